"""The complete RandHet neuron: decay gradients, draw modes, distributions, conv blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lava.lib.dl.slayer.block import cuba as cuba_block
from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator as slayer_li

from randhet.decays import draw_layer
from randhet.loihi import LeakyIntegrator
from randhet.models.neuron import RandHetConv, RandHetNeuron, slayer_neuron_params
from randhet.spec import ConvSpec, NeuronSpec


def _loss(x: torch.Tensor, d: torch.Tensor, w: torch.Tensor, fn) -> torch.Tensor:
    return (fn(x, d) * w).sum()


def test_decay_gradient_matches_finite_differences_and_slayer_is_off_by_minus_4096() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 50, 12, generator=g, dtype=torch.float64) * 40 + 10  # strong drive
    d = torch.randint(300, 900, (50,), generator=g).to(torch.float64)
    w = torch.randn(3, 50, 12, generator=g, dtype=torch.float64)

    def ours(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return LeakyIntegrator.apply(x, d, None)

    dd = d.clone().requires_grad_(True)
    _loss(x, dd, w, ours).backward()
    h = 4.0
    with torch.no_grad():
        fd = torch.stack([  # each neuron's loss term depends on its own decay only
            ((ours(x, d + h * e) - ours(x, d - h * e)) * w).sum() / (2 * h)
            for e in torch.eye(50, dtype=torch.float64)[:10]
        ])
    assert torch.allclose(dd.grad[:10], fd, rtol=0.03, atol=1e-3 * fd.abs().max())

    stock = d.clone().to(torch.float32).requires_grad_(True)
    (slayer_li.dynamics(x.float(), stock, torch.zeros(3, 50), 4096) * w.float()).sum().backward()
    ratio = (stock.grad[:10].double() / fd).median()
    assert -4200 < ratio < -4000  # SLAYER's decay gradient: wrong sign, 4096x too large


def test_decay_gradient_holds_for_states_below_one_unit() -> None:
    """States under the threshold's scale (below 1.0 SLAYER unit, where a trained network's
    voltages live): the gradient still matches finite differences (an integer buffer for the
    previous state once truncated them to 0 and lost it)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 40, 16, generator=g, dtype=torch.float64) * 0.2  # states of 0.2 .. 0.9
    d = torch.randint(300, 900, (40,), generator=g).to(torch.float64)
    w = torch.randn(4, 40, 16, generator=g, dtype=torch.float64)
    dd = d.clone().requires_grad_(True)
    (LeakyIntegrator.apply(x, dd, None) * w).sum().backward()
    h = 4.0
    with torch.no_grad():
        fd = torch.stack([
            ((LeakyIntegrator.apply(x, d + h * e, None)
              - LeakyIntegrator.apply(x, d - h * e, None)) * w).sum() / (2 * h)
            for e in torch.eye(40, dtype=torch.float64)[:10]
        ])
    assert fd.abs().min() > 0
    assert torch.allclose(dd.grad[:10], fd, rtol=0.05, atol=0.02 * fd.abs().max())


def test_learnable_mean_decay_gets_the_finite_difference_gradient() -> None:
    spec = NeuronSpec(threshold=1000.0, sigma=0.0, learn_decay=True)
    g = torch.Generator().manual_seed(1)
    x = torch.round(torch.rand(2, 30, 16, generator=g) * 20 * 64) / 64
    w = torch.randn(2, 30, 16, generator=g)

    def loss(mean_v: float) -> torch.Tensor:
        n = RandHetNeuron(spec, (30,))
        with torch.no_grad():
            n.mean_voltage_decay.fill_(mean_v)
        _, v = n.dynamics(x)
        return (v * w).sum(), n

    value, n = loss(0.25)
    value.backward()
    h = 8 / 4096
    fd = (loss(0.25 + h)[0] - loss(0.25 - h)[0]) / (2 * h)
    assert n.mean_voltage_decay.grad is not None
    assert abs(n.mean_voltage_decay.grad.item() - fd.item()) < 0.03 * abs(fd.item())


def test_resample_modes_draw_when_configured() -> None:
    x = torch.ones(4, 6, 3, 3, 5) * 0.5

    def draws(**kw) -> tuple[RandHetNeuron, list[torch.Tensor]]:
        n = RandHetNeuron(NeuronSpec(sigma=1.0, **kw), (6, 3, 3), torch.Generator().manual_seed(2))
        out = []
        for _ in range(2):
            n(x)
            out.append(n.last_draw.current)
        return n, out

    _, (a, b) = draws(resample="forward")
    assert a.shape == (4, 6, 3, 3) and not torch.equal(a, b)
    _, (a, b) = draws(resample="step")
    assert a.shape == (4, 6, 3, 3, 5) and not torch.equal(a[..., 0], a[..., 1])
    n, (a, b) = draws(resample="fixed")
    assert torch.equal(a, b) and a.shape == (1, 6, 3, 3)  # frozen: the same for every sample
    assert "fixed_eps_current" in n.state_dict()
    _, (a, _) = draws(granularity="channel")
    assert a.shape == (4, 6, 1, 1)  # one draw per channel, shared across positions
    assert a.flatten().unique().numel() > 6


def test_gaussian_draws_have_the_configured_mean_and_spread() -> None:
    spec = NeuronSpec(sigma=0.05, current_decay=0.4, distribution="gaussian", randomize="current")
    d = draw_layer(spec, 400, (100,), torch.Generator().manual_seed(3)).current / 4096
    assert abs(d.mean().item() - 0.4) < 0.002
    assert abs(d.std().item() - 0.05) < 0.002
    assert torch.equal(d * 4096, torch.round(d * 4096))


def test_sigma_zero_conv_block_equals_stock_slayer_conv_block() -> None:
    spec = NeuronSpec(sigma=0.0)
    conv = ConvSpec((3, 8, 8), 5, kernel=3, stride=2, padding=1)
    torch.manual_seed(0)
    ours = RandHetConv(spec, conv)
    stock = cuba_block.Conv(slayer_neuron_params(spec), 3, 5, 3, stride=2, padding=1,
                            delay_shift=False)
    with torch.no_grad():
        ours.synapse.weight.mul_(8)
        stock.synapse.weight.copy_(ours.synapse.weight)
    x1 = (torch.rand(4, 3, 8, 8, 10, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    x1.requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    a, b = ours(x1), stock(x2)
    assert a.sum() > 0 and torch.equal(a, b)
    a.sum().backward()
    b.sum().backward()
    # the synapse runs as conv2d over B x T frames (RandHetConv.drive): the same values, the
    # gradients summed in another order
    assert x1.grad.abs().sum() > 0
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.synapse.weight.grad, stock.synapse.weight.grad,
                               rtol=1e-5, atol=1e-6)


def test_pool_layer_is_a_fixed_depthwise_sum() -> None:
    pool = RandHetConv(NeuronSpec(sigma=0.0), ConvSpec((4, 6, 6), 4, 2, 2, 0, pool=True))
    w = pool.integer_weight()
    assert w.shape == (4, 1, 2, 2) and torch.all(w == 64)
    assert not pool.synapse.weight.requires_grad
    assert tuple(pool(torch.ones(1, 4, 6, 6, 3)).shape) == (1, 4, 3, 3, 3)


@pytest.mark.parametrize("bad", ["conv:0", "pool", "dense:x", "conv:3:q1"])
def test_bad_layer_tokens_are_refused(bad: str) -> None:
    from randhet.config import load_config
    from randhet.errors import ConfigError

    with pytest.raises(ConfigError, match="bad layer"):
        load_config(None, [f'model.layers=["{bad}"]'])


def test_fixed_draw_is_reproducible_from_the_seed() -> None:
    a = RandHetNeuron(NeuronSpec(resample="fixed"), (7,), torch.Generator().manual_seed(5))
    b = RandHetNeuron(NeuronSpec(resample="fixed"), (7,), torch.Generator().manual_seed(5))
    assert np.array_equal(a.fixed_eps_current.numpy(), b.fixed_eps_current.numpy())
