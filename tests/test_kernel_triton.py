"""The CUDA kernel (Triton) is the C++ kernel bit for bit, checked here in Triton's
interpreter on CPU tensors (tests/triton_interpreted.py, in a fresh process: the interpreter is
chosen when Triton is first imported); without Triton, one line and the loop."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from randhet import kernel, loihi

SCRIPT = Path(__file__).with_name("triton_interpreted.py")


@pytest.mark.skipif(importlib.util.find_spec("triton") is None or not kernel.available(),
                    reason="needs Triton and the C++ kernel")
def test_the_triton_kernel_is_the_cpp_kernel_bit_for_bit_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "RANDHET_KERNEL": "",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = [int(line.split()[1]) for line in proc.stdout.splitlines()
              if line.startswith("checked ")]
    assert len(counts) == 2 and counts[0] >= 40 and counts[1] >= 6, proc.stdout


def test_without_triton_one_line_says_so_and_the_loop_runs(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "randhet.kernel_triton", None)  # its import fails
    monkeypatch.setattr(kernel, "_state", {**kernel._state, "triton": None,
                                           "triton_tried": False})
    monkeypatch.setenv("RANDHET_KERNEL", "triton")  # CPU tensors take the CUDA path
    x = torch.randn(2, 3, 8)
    d = torch.full((3,), 1024.0)
    assert kernel.neuron_kernel(x, d, d, 1.25) is None
    assert loihi.cuba_spikes(x, d, d, 1.25, (0.3, 2.0)) is None  # the caller runs the loop
    assert kernel.neuron_kernel(x, d, d, 1.25) is None  # tried once, said once
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Triton kernel is not available" in err[0], err


def test_the_neuron_kernel_takes_cpu_and_cuda_only() -> None:
    d = torch.full((3,), 1024.0, device="meta")
    assert kernel.neuron_kernel(torch.empty(2, 3, 8, device="meta"), d, d, 1.25) is None
