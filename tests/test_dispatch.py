"""One neuron dispatch: the backend of every kernel op is decided in one place and says why;
the neuron's options travel as one struct; the layout steps and the bindings are written once
(in the C++ extension)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from randhet import kernel, loihi

CSRC = Path(kernel.__file__).with_name("csrc")
pytestmark = pytest.mark.skipif(not kernel.available(), reason="the kernel did not build here")


def test_each_op_gets_its_backend_and_the_reason_for_it(monkeypatch) -> None:
    cpu, f32 = torch.device("cpu"), torch.float32
    chosen = kernel.backend("neuron", cpu, f32)
    assert (chosen.name, chosen.impl) == ("c++", kernel.extension())
    assert "vectorized float path" in chosen.why and "int64 scan" in chosen.why
    assert kernel.backend("neuron", cpu, f32) is chosen  # decided once, kept
    assert "int64 scan" in kernel.backend("neuron", cpu, torch.float64).why
    assert kernel.backend("integrator", cpu, torch.int64).name == "c++"
    for op, device, dtype, why in (
            ("neuron", cpu, torch.float16, "float32 or float64, not torch.float16"),
            ("integrator", cpu, torch.int32, "int64 or float32/64, not torch.int32"),
            ("conv2d", torch.device("meta"), f32, "CPU tensors, not meta")):
        chosen = kernel.backend(op, device, dtype)
        assert (chosen.name, chosen.impl) == ("loop", None) and why in chosen.why, chosen
    with kernel.loop_only():
        assert "kernel is off" in kernel.backend("draw", cpu, f32).why
    monkeypatch.setenv("RANDHET_KERNEL", "loop")
    assert "RANDHET_KERNEL=loop" in kernel.backend("quantize", cpu, f32).why
    monkeypatch.delenv("RANDHET_KERNEL")
    decided = kernel.decisions()
    assert decided["neuron on cpu float16"].startswith("loop: ")
    assert decided["integrator on cpu int64"].startswith("c++: ")
    with pytest.raises(ValueError, match="unknown op 'pool'"):
        kernel.backend("pool", cpu, f32)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton")
def test_triton_on_cpu_tensors_is_chosen_where_asked(monkeypatch) -> None:
    import randhet

    imported = hasattr(randhet, "kernel_triton")
    monkeypatch.setenv("RANDHET_KERNEL", "triton")
    monkeypatch.setattr(kernel, "_state", {**kernel._state, "triton": None,
                                           "triton_tried": False})
    try:
        chosen = kernel.backend("neuron", torch.device("cpu"), torch.float32)
        assert chosen.name == "triton" and "RANDHET_KERNEL=triton" in chosen.why
        assert kernel.backend("integrator", torch.device("cpu"), torch.int64).name == "c++"
    finally:  # as it was: other tests import (or fail to import) the Triton module themselves
        if not imported:
            delattr(randhet, "kernel_triton")
            sys.modules.pop("randhet.kernel_triton", None)


def test_the_neurons_options_are_one_named_struct() -> None:
    x, du = torch.rand(4, 3, 8), torch.full((3,), 1024.0)
    opts = kernel.neuron_options(1.25, (0.3, 2.0), 64, du, x)
    assert (opts.th_mode, opts.th_float, opts.th_spike, opts.grid) == (2, 1.25 * 4096, 1.25, 64)
    assert (opts.surrogate, opts.tau, opts.scale) == (True, 0.3, 2.0)
    assert (opts.acc_double, opts.y_double) == (False, False)
    assert kernel.neuron_options(1.25, None, 0, du.double(), x).acc_double
    assert kernel.neuron_options(1.25, (0.3, 2.0), 64, du, x) is opts  # built once, kept
    with pytest.raises(TypeError):  # by name only
        kernel.extension().NeuronOptions(2, 0, 5120.0, 1.25, 0, False, 1.0, 0.0, False, False)
    # the C++ node and the Python node (the Triton kernel's) read the same options
    spikes = loihi.cuba_spikes(x * 3, du, du, 1.25, (0.3, 2.0), 64)
    k = kernel.neuron_kernel(x, du, du, 1.25)
    assert torch.equal(spikes, loihi._CubaSpikes.apply(x * 3, du, du, opts, k))


@pytest.mark.parametrize("make", [
    lambda: torch.rand(2, 3, 5),                                  # stored time last
    lambda: torch.rand(5, 2, 3).movedim(0, -1),                   # stored time major
    lambda: torch.rand(2, 5, 3).transpose(1, 2),                  # neither: copied
    lambda: torch.rand(2, 3, 1).expand(2, 3, 5),                  # one drive for every step
])
def test_the_layout_steps_give_back_what_they_took(make) -> None:
    ext, x = kernel.extension(), make()
    two_d, time_major = ext.steps_2d(x)
    assert two_d.dim() == 2 and two_d.is_contiguous()
    assert torch.equal(ext.from_2d(two_d, x.shape, time_major), x)
    drive, tm = ext.drive_2d(x)
    assert torch.equal(ext.from_2d(drive.contiguous(), x.shape, tm), x)
    if x.stride(-1) == 0:
        assert tm and drive.stride() == (0, 1)  # read as it is, no copy
    per_neuron = torch.rand(3)
    laid = ext.laid_out(per_neuron, x, False, time_major)
    assert torch.equal(laid.view(2, 3), per_neuron.expand(2, 3))
    per_step = torch.rand(3, 5)
    assert torch.equal(ext.from_2d(ext.laid_out(per_step, x, True, time_major), x.shape,
                                   time_major), per_step.expand(2, 3, 5))


def test_the_extension_shares_one_header_and_one_binding_file() -> None:
    sources = {p.name: p.read_text() for p in CSRC.glob("*.cpp")}
    built = {kernel.SOURCE, kernel.DRAWS, kernel.CONV, kernel.THREADS, kernel.BINDINGS}
    assert set(sources) == {p.name for p in built}  # every source file is built, no other
    assert {"cuba.cpp", "conv.cpp", "draws.cpp", "threads.cpp", "bindings.cpp"} == set(sources)
    modules = [name for name, text in sources.items() if "PYBIND11_MODULE" in text]
    assert modules == ["bindings.cpp"]
    assert all('#include "randhet.h"' in text for text in sources.values())
    spelled = [p.name for p in CSRC.iterdir() if "target_clones" in p.read_text()]
    assert spelled == ["randhet.h"]
    # every function the module binds is declared in the header
    header = (CSRC / "randhet.h").read_text()
    bound = re.findall(r'm\.def\("(\w+)", &randhet::(?:layout::)?(\w+)', sources["bindings.cpp"])
    assert len(bound) >= 15
    assert all(re.search(rf"\b{fn}\(", header) for _, fn in bound)
    # the kernels' layout steps are written in C++ only; the gradients' reduction to the
    # decays' shapes is torch's sum_to in both nodes and the loop
    assert not re.search(r"movedim|reshape|expand\(", Path(kernel.__file__).read_text())
    assert "def _reduce_to" not in Path(loihi.__file__).read_text()
    assert "at::sum_to(" in sources["cuba.cpp"] and "reduce_to" not in sources["cuba.cpp"]
