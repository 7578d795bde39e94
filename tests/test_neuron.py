"""RandHet neuron: sigma = 0 is stock SLAYER bit for bit; draws are fresh, seeded, on-grid."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from lava.lib.dl.slayer.block import cuba as cuba_block
from lava.lib.dl.slayer.neuron import cuba

from randhet.decays import decays_from_eps, draw_eps, draw_layer, draw_network, fresh_draw
from randhet.models.neuron import (
    RandHetConv,
    RandHetDense,
    RandHetNeuron,
    slayer_neuron_params,
)
from randhet.spec import ConvSpec, NeuronSpec

STOCK = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=0.0)


def _drive(shape: tuple[int, ...], seed: int, scale: float = 1.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # integer multiples of 1/64: what Loihi synapses deliver
    return torch.round(torch.randn(shape, generator=g) * scale * 64) / 64


@pytest.mark.parametrize("shape", [(4, 7, 20), (3, 2, 5, 5, 12)])
def test_sigma_zero_neuron_equals_stock_cuba_forward_and_backward(shape) -> None:
    ours = RandHetNeuron(STOCK, shape[1:-1])
    stock = cuba.Neuron(**slayer_neuron_params(STOCK))
    x1 = _drive(shape, 0).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    s1, s2 = ours(x1), stock(x2)
    assert s1.sum() > 0
    assert torch.equal(s1, s2)
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    (s1 * w).sum().backward()
    (s2 * w).sum().backward()
    assert torch.equal(x1.grad, x2.grad)


def test_sigma_zero_block_equals_stock_slayer_dense_block() -> None:
    torch.manual_seed(0)
    ours = RandHetDense(STOCK, 12, 9)
    stock = cuba_block.Dense(slayer_neuron_params(STOCK), 12, 9, delay_shift=False)
    with torch.no_grad():
        stock.synapse.weight.copy_(ours.synapse.weight * 20)
        ours.synapse.weight.copy_(ours.synapse.weight * 20)
    spikes = (torch.rand(5, 12, 16, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    a, b = ours(spikes), stock(spikes)
    assert a.sum() > 0
    assert torch.equal(a, b)


@pytest.mark.parametrize("node", ["cpp", "python"])  # the extension's node, or without it
@pytest.mark.parametrize("spread", [0.5, 8.0])  # no weight clamped; many clamped
def test_the_8bit_weight_hook_is_slayers_bit_for_bit(spread, node) -> None:
    from randhet import kernel

    if node == "cpp" and not kernel.available():
        pytest.skip("the kernel extension did not build here")
    with kernel.loop_only() if node == "python" else contextlib.nullcontext():
        _check_8bit_weight_hook(spread)


def _check_8bit_weight_hook(spread: float) -> None:
    ours = RandHetNeuron(STOCK, (9,))
    stock = cuba.Neuron(**slayer_neuron_params(STOCK))
    g = torch.Generator().manual_seed(3)
    w = torch.randn(9, 12, 1, 1, 1, generator=g) * spread
    w[0, :4, 0, 0, 0] = torch.tensor([-4.0, 3.96875, -4.1, float("nan")])  # bounds, past; NaN
    w[1, :4, 0, 0, 0] = torch.tensor([0.5, 1.5, -2.5, 3.5]) / 32  # ties: round half to even
    w1, w2 = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    q1, q2 = ours.quantize_8bit(w1), stock.quantize_8bit(w2)
    assert torch.equal(q1.isnan(), q2.isnan()) and torch.equal(q1.nan_to_num(), q2.nan_to_num())
    up = torch.randn(w.shape, generator=g)
    (q1 * up).nan_to_num().sum().backward()
    (q2 * up).nan_to_num().sum().backward()
    assert torch.equal(w1.grad, w2.grad)
    assert torch.equal(ours.quantize_8bit(w, descale=True).nan_to_num(),
                       stock.quantize_8bit(w, descale=True).nan_to_num())
    w_in = torch.randn(9, 12, generator=g) * 0.5  # nothing clamped: the gradient passes
    w_in.requires_grad_(True)
    ours.quantize_8bit(w_in).backward(up[..., 0, 0, 0])
    assert torch.equal(w_in.grad, up[..., 0, 0, 0])


@pytest.mark.parametrize("inputs", ["binary", "graded", "direct"])
def test_the_dense_drive_is_slayers_synapse_bit_for_bit(inputs) -> None:
    """The time-major matmul (one over all B x T inputs, one per sample for an input that
    repeats over time) gives SLAYER's conv3d values, and the same gradients up to rounding."""
    torch.manual_seed(0)
    block = RandHetDense(replace(STOCK, sigma=1.0), 784, 96)
    with torch.no_grad():
        block.synapse.weight.mul_(30)
    g = torch.Generator().manual_seed(3)
    if inputs == "binary":
        x = (torch.rand(6, 784, 16, generator=g) < 0.3).float()
    elif inputs == "graded":  # normalised pixels on a 1/16 grid, changing every step
        x = torch.round(torch.randn(6, 784, 16, generator=g) * 1.5 * 16) / 16
    else:  # direct encoding: one image repeated over T (stride 0)
        x = (torch.round(torch.randn(6, 784, 1, generator=g) * 1.5 * 16) / 16).expand(6, 784, 16)
    x = x.requires_grad_(True) if inputs != "direct" else x
    ours = block.drive(x)
    slayer = block.synapse(x)
    assert ours.shape == slayer.shape == (6, 96, 16)
    assert ours.abs().max() > 1
    assert torch.equal(ours, slayer)
    w = torch.randn(ours.shape, generator=g)
    grads = [torch.autograd.grad((z * w).sum(), [block.synapse.weight]
                                 + ([x] if x.requires_grad else [])) for z in (ours, slayer)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("inputs", ["binary", "graded", "direct"])
@pytest.mark.parametrize("layer", ["3x3", "5x5-s2", "pool"])
def test_the_conv_drive_is_slayers_synapse_bit_for_bit(inputs, layer) -> None:
    """The time-major 2-d convolution (one over all B x T inputs, one per sample for an input
    that repeats over time) gives SLAYER's conv3d values, and the same gradients up to
    rounding, for plain, strided and pooling layers."""
    torch.manual_seed(0)
    spec = {"3x3": ConvSpec((3, 12, 12), 8), "5x5-s2": ConvSpec((3, 12, 12), 6, 5, 2, 2),
            "pool": ConvSpec((3, 12, 12), 3, 2, 2, 0, pool=True)}[layer]
    block = RandHetConv(replace(STOCK, sigma=1.0), spec)
    if not spec.pool:
        with torch.no_grad():
            block.synapse.weight.mul_(30)
    g = torch.Generator().manual_seed(3)
    if inputs == "binary":
        x = (torch.rand(4, 3, 12, 12, 16, generator=g) < 0.3).float()
    elif inputs == "graded":  # normalised pixels on a 1/16 grid, changing every step
        x = torch.round(torch.randn(4, 3, 12, 12, 16, generator=g) * 1.5 * 16) / 16
    else:  # direct encoding: one image repeated over T (stride 0)
        x = (torch.round(torch.randn(4, 3, 12, 12, 1, generator=g) * 1.5 * 16) / 16
             ).expand(4, 3, 12, 12, 16)
    x = x.requires_grad_(True) if inputs != "direct" else x
    ours = block.drive(x)
    slayer = block.synapse(x)
    assert ours.shape == slayer.shape == (4, *spec.out_shape, 16)
    assert ours.abs().max() > 1
    assert torch.equal(ours, slayer)
    assert ours.movedim(-1, 0).is_contiguous() or inputs == "direct"  # stored time major
    w = torch.randn(ours.shape, generator=g)
    wanted = ([block.synapse.weight] if block.synapse.weight.requires_grad else []) + (
        [x] if x.requires_grad else [])
    if not wanted:
        return
    grads = [torch.autograd.grad((z * w).sum(), wanted) for z in (ours, slayer)]
    for a, b in zip(*grads, strict=True):  # sums of ~10**4 float32 terms, in two orders
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_draws_are_fresh_per_forward_pass_and_per_sample() -> None:
    neuron = RandHetNeuron(NeuronSpec(sigma=1.0), (5,), torch.Generator().manual_seed(0))
    x = _drive((1, 5, 4), 3).expand(6, 5, 4).contiguous()  # six copies of one sample
    neuron(x)
    first = neuron.last_draw
    neuron(x)
    second = neuron.last_draw
    assert first is not None and second is not None
    assert not torch.equal(first.current, second.current)  # redrawn every forward pass
    assert not torch.equal(first.voltage, second.voltage)
    rows = {tuple(r.tolist()) for r in first.current}
    assert len(rows) == 6  # every sample of the batch has its own decays


def test_identical_samples_spike_differently_with_randomness_and_identically_without() -> None:
    x = _drive((1, 30, 16), 4, scale=1.0).expand(8, 30, 16).contiguous()
    rand = RandHetNeuron(NeuronSpec(sigma=1.5), (30,), torch.Generator().manual_seed(0))(x)
    plain = RandHetNeuron(STOCK, (30,))(x)
    assert len({tuple(s.flatten().tolist()) for s in rand}) > 1
    assert len({tuple(s.flatten().tolist()) for s in plain}) == 1


def test_draws_are_integers_on_the_12_bit_grid_and_reproducible() -> None:
    spec = NeuronSpec(sigma=2.0, current_decay=0.02, voltage_decay=0.9)
    a = draw_network(spec, 50, [(40,), (10,)], seed=7)
    b = draw_network(spec, 50, [(40,), (10,)], seed=7)
    c = draw_network(spec, 50, [(40,), (10,)], seed=8)
    for da, db in zip(a, b, strict=True):
        for t in (da.current, da.voltage):
            assert torch.equal(t, torch.round(t))
            assert t.min() >= 0 and t.max() <= 4096
        assert torch.equal(da.current, db.current) and torch.equal(da.voltage, db.voltage)
    assert not torch.equal(a[0].current, c[0].current)


def test_draw_distribution_is_logit_normal_around_the_mean() -> None:
    spec = NeuronSpec(sigma=1.0, current_decay=0.25, voltage_decay=0.03)
    draw = draw_layer(spec, 200, (100,), torch.Generator().manual_seed(0))
    du = draw.current.flatten().numpy() / 4096
    assert abs(np.median(du) - 0.25) < 0.01  # the median of a logit-normal is the mean decay
    z = np.log(np.clip(du, 1e-6, 1 - 1e-6) / np.clip(1 - du, 1e-6, 1))
    assert abs(z.std() - 1.0) < 0.03  # logit spread equals sigma (up to grid rounding)
    assert abs(z.mean() - np.log(0.25 / 0.75)) < 0.02


def test_sigma_zero_draw_is_exactly_the_mean_and_randomize_selects_decays() -> None:
    eps = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert torch.all(decays_from_eps(torch.tensor([0.25]), 0.0, eps) == 1024)
    only_v = draw_layer(NeuronSpec(sigma=1.0, randomize="voltage"), 20, (10,), None)
    assert torch.all(only_v.current == 1024)
    assert only_v.voltage.unique().numel() > 1


@pytest.mark.parametrize("shape", [(8, 128), (4, 10), (3, 7), (2, 5, 16)])
def test_the_noise_is_two_draws_one_after_the_other(shape) -> None:
    """draw_eps takes both noises from one draw where it can: the numbers and the generator
    state after are those of two draws in turn, whatever the size."""
    spec = NeuronSpec(sigma=1.0, resample="step" if len(shape) == 3 else "forward")
    gen = torch.Generator().manual_seed(7)
    cur, vol = draw_eps(spec, shape[0], shape[1:2], shape[-1], gen)
    after = torch.randn(5, generator=gen)
    ref = torch.Generator().manual_seed(7)
    for eps in (cur, vol):
        assert torch.equal(eps, torch.randn(shape, generator=ref).to(torch.float64))
    assert torch.equal(after, torch.randn(5, generator=ref))


@pytest.mark.parametrize("case", ["neuron", "odd-size", "step", "channel", "edges"])
def test_the_one_call_draw_is_the_python_draw_bit_for_bit(case) -> None:
    """fresh_draw's one call of the extension (draws.cpp) against draw_eps then decays_for:
    the decays and the generator state after, sizes in and out of torch's 16-value blocks."""
    from randhet import kernel

    if not kernel.available():
        pytest.skip("the kernel extension did not build here")
    spec = NeuronSpec(sigma=1.0 if case != "edges" else 2.5,
                      resample="step" if case == "step" else "forward",
                      granularity="channel" if case == "channel" else "neuron",
                      current_decay=1 / 4096 if case == "edges" else 0.25)
    shape = {"odd-size": (7,), "channel": (4, 3, 3)}.get(case, (32,))
    means = (torch.tensor([spec.current_decay]), torch.tensor([spec.voltage_decay]))

    def draw(ext: bool) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(5)
        if ext:
            d = fresh_draw(spec, *means, 9, shape, 6, gen)
        else:
            with kernel.loop_only():  # the extension off: the Python steps
                d = fresh_draw(spec, *means, 9, shape, 6, gen)
        return d.current, d.voltage, torch.randn(3, generator=gen)

    one, python = draw(True), draw(False)
    assert one[0].dtype == torch.float64 and one[0].unique().numel() > 2
    assert all(torch.equal(a, b) for a, b in zip(one, python, strict=True))


def test_decays_without_a_gradient_are_the_graded_decays_bit_for_bit() -> None:
    """The in-place path taken where no gradient is wanted gives the autograd path's bits:
    means at and near the edges, noise in float64 and float32, far tails, two threads."""
    gen = torch.Generator().manual_seed(4)
    eps64 = torch.randn(64, 300, generator=gen, dtype=torch.float64)
    eps64.view(-1)[:6] = torch.tensor([40.0, -40.0, 8.5, -8.5, 0.0, -0.0], dtype=torch.float64)
    eps32 = (torch.randn(7, 5, 9, generator=gen) * 3).to(torch.float32)
    threads = torch.get_num_threads()
    try:
        for i, (frac, sigma, bounds, eps) in enumerate((
                (0.25, 1.3, (2, 4000), eps64), (0.03, 1.3, (2, 4000), eps64),
                (0.0, 0.7, (0, 4096), eps64), (1.0, 0.7, (1, 4096), eps64),
                (1 / 4096, 3.0, (0, 4095), eps32), (0.5, 0.01, (1, 4096), eps32))):
            torch.set_num_threads(1 + i % 2)
            mean = torch.tensor([frac], requires_grad=True)
            graded = decays_from_eps(mean, sigma, eps, bounds=bounds)
            assert graded.requires_grad
            with torch.no_grad():
                plain = decays_from_eps(mean, sigma, eps, bounds=bounds)
            assert not plain.requires_grad and plain.dtype == torch.float64
            assert torch.equal(plain, graded.detach())
            assert torch.equal(decays_from_eps(mean.detach(), sigma, eps, bounds=bounds), plain)
            assert plain.unique().numel() > 2
            with torch.no_grad():  # a mean learned in place: its new value is used
                mean.add_(64 / 4096 if frac < 0.5 else -64 / 4096)
                moved = decays_from_eps(mean, sigma, eps, bounds=bounds)
            assert torch.equal(moved, decays_from_eps(mean, sigma, eps, bounds=bounds).detach())
            assert not torch.equal(moved, plain)
    finally:
        torch.set_num_threads(threads)
