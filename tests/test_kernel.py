"""The fused CUBA kernel gives the per-step loop's integers and gradients bit for bit (and the
loop's strides); without it, the loop runs after one line on stderr."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from randhet import kernel, loihi
from randhet.layer_tokens import network_from_tokens
from randhet.models.spiking import SpikingNetwork
from randhet.spec import EncodingSpec, NeuronSpec

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the kernel did not build here")

SHAPES = {"dense": (5, 33, 16), "conv": (3, 4, 5, 5, 12)}


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equal values, dtype and strides (downstream reductions follow the strides)."""
    if a is None or b is None:
        return a is b
    return torch.equal(a, b) and a.dtype == b.dtype and a.stride() == b.stride()


def _both(fn):  # type: ignore[no-untyped-def]
    """fn() with the kernel, then with the loop."""
    fused = fn()
    with kernel.loop_only():
        loop = fn()
    return fused, loop


@pytest.mark.parametrize("layer", sorted(SHAPES))
@pytest.mark.parametrize("per_step", [False, True], ids=["per-sample", "per-step"])
@pytest.mark.parametrize("clip", [None, "wrap", "wrap_twos", "saturate"])
@pytest.mark.parametrize("threshold", [None, 5121, 5120.0, 5120.3])
def test_integrate_forward_is_the_loop_bit_for_bit(layer, per_step, clip, threshold) -> None:
    g = torch.Generator().manual_seed(len(layer) + 7 * per_step)
    shape = SHAPES[layer]
    # drives near the 24-bit edges, so the wrap and the saturation act
    drive = torch.randint(-3 << 22, 3 << 22, shape, generator=g)
    d_shape = shape if per_step else shape[:-1]
    d = torch.randint(0, 4097, d_shape, generator=g)
    fused, loop = _both(lambda: loihi.integrate(drive, d, threshold, clip))
    assert all(_same(a, b) for a, b in zip(fused, loop, strict=True))
    if threshold is not None:
        assert (fused[0] >= threshold).any()  # spikes (and resets) happen
    if clip is not None:
        assert (drive.abs() > 1 << 23).any()


@pytest.mark.parametrize("hardware", [False, True])
@pytest.mark.parametrize("wrap", ["lava", "twos_complement"])
@pytest.mark.parametrize("bits", [None, 16])
@pytest.mark.parametrize("layer", sorted(SHAPES))
def test_cuba_is_the_loop_bit_for_bit_with_and_without_the_datapath(hardware, wrap, bits,
                                                                    layer) -> None:
    g = torch.Generator().manual_seed(3)
    shape = SHAPES[layer]
    drive = torch.randint(-3 << 22, 3 << 22, shape, generator=g)
    du = torch.randint(1, 4097, shape[:-1], generator=g)  # per sample
    dv = torch.randint(0, 4096, shape, generator=g)  # per step
    datapath = loihi.Datapath(synaptic_input_bits=bits, current_wrap=wrap)
    fused, loop = _both(lambda: loihi.cuba(drive, du, dv, 80, hardware, datapath))
    assert all(_same(a, b) for a, b in zip(fused, loop, strict=True))
    assert fused[2].any()


def _integrator(x: torch.Tensor, d: torch.Tensor, threshold: float | None,
                ) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    d = d.clone().requires_grad_(True)
    y = loihi.LeakyIntegrator.apply(x, d, threshold)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    (y * w).sum().backward()
    return y.detach(), x.grad, d.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decays", ["mean", "channel", "neuron", "step"])
@pytest.mark.parametrize("threshold", [None, 1.25])
def test_integrator_forward_input_and_decay_gradients_are_the_loop_bit_for_bit(
        dtype, decays, threshold) -> None:
    g = torch.Generator().manual_seed(5)
    shape = (4, 6, 5, 5, 16)
    x = torch.round(torch.randn(shape, generator=g, dtype=dtype) * 96) / 256
    d_shape = {"mean": (1,), "channel": (6, 1, 1), "neuron": shape[:-1], "step": shape}[decays]
    d = torch.randint(0, 4097, d_shape, generator=g).to(dtype)
    fused, loop = _both(lambda: _integrator(x, d, threshold))
    assert all(_same(a, b) for a, b in zip(fused, loop, strict=True))
    assert fused[2].abs().sum() > 0


@pytest.mark.parametrize("tokens", [["dense:24"], ["conv:4:k3", "pool:2", "flatten", "dense:8"]],
                         ids=["dense", "conv"])
@pytest.mark.parametrize("resample", ["forward", "step"])
def test_a_training_step_is_the_loop_bit_for_bit(tokens, resample) -> None:
    neuron = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=1.0,
                        resample=resample, learn_decay=True)
    spec = network_from_tokens((1, 8, 8), tokens, 10, neuron, EncodingSpec(timesteps=12))
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(8) % 10

    def step() -> tuple[torch.Tensor, ...]:
        torch.manual_seed(0)  # the weights' initialisation
        net = SpikingNetwork(spec, seed=0)
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        return (logits.detach(),) + tuple(p.grad for p in net.parameters() if p.grad is not None)

    fused, loop = _both(step)
    assert len(fused) > 2 and all(torch.equal(a, b) for a, b in zip(fused, loop, strict=True))


def test_turned_off_by_the_environment_the_loop_runs(monkeypatch) -> None:
    monkeypatch.setenv("RANDHET_KERNEL", "loop")
    assert not kernel.available()
    assert kernel.integrate(torch.zeros(2, 3, dtype=torch.int64), torch.full((2,), 4096),
                            None, None, True, False) is None


def test_a_failed_build_says_so_in_one_line_and_the_loop_runs(tmp_path, monkeypatch,
                                                               capsys) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text("#error this machine has no working compiler\n")
    monkeypatch.setattr(kernel, "SOURCE", broken)
    monkeypatch.setattr(kernel, "NAME", "randhet_cuba_broken_test")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(kernel, "_state", {"ext": None, "tried": False, "off": False})
    drive = torch.randint(0, 9000, (3, 4, 10), generator=torch.Generator().manual_seed(0))
    d = torch.full((3, 4), 1024)
    pre, post = loihi.integrate(drive, d, 5000)
    err = capsys.readouterr().err.strip().splitlines()
    # the progress line of a first build, then the one line of the failure
    assert err[:-1] == ["randhet: building the fused CUBA kernel (once per machine, a minute "
                        "or two) ..."]
    assert "did not build" in err[-1] and "per-step loop" in err[-1]
    assert not kernel.available()  # tried once, not again
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(kernel, "_state", {"ext": None, "tried": False, "off": True})
    expect = loihi.integrate(drive, d, 5000)
    assert _same(pre, expect[0]) and _same(post, expect[1])
