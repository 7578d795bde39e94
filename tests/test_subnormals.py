"""kernel.subnormals_flushed: inside it, every thread of torch's pool flushes subnormal floats
to zero, and after it they come back; an attack's gradient step runs inside it, so a narrow
surrogate's underflowing gradients hold no subnormal and keep their normal values' bits."""

from __future__ import annotations

import platform

import pytest
import torch

from randhet import kernel
from randhet.attack.base import Attack, attacker_surrogate, frozen
from randhet.attack.settings import parse_surrogate
from randhet.layer_tokens import network_from_tokens
from randhet.models.spiking import SpikingNetwork
from randhet.spec import EncodingSpec, NeuronSpec

pytestmark = [
    pytest.mark.skipif(not kernel.available(), reason="the kernel did not build here"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="FTZ and DAZ are x86's"),
]

TINY = torch.finfo(torch.float32).tiny


def _subnormal(t: torch.Tensor) -> torch.Tensor:
    return (t != 0) & (t.abs() < TINY)


def test_every_pool_thread_flushes_inside_the_block_and_none_after() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.full((1 << 20,), TINY)  # a million elements: the product runs on both threads
        assert _subnormal(x * 0.25).all()
        with kernel.subnormals_flushed() as applies:
            assert applies
            inside = x * 0.25
            with kernel.subnormals_flushed():  # nested: the outer mode stays after the inner
                pass
            still = x * 0.25
        after = x * 0.25
    finally:
        torch.set_num_threads(threads)
    assert (inside == 0).all() and (still == 0).all()
    assert _subnormal(after).all()


def test_an_attack_step_through_a_narrow_surrogate_has_no_subnormal_gradient() -> None:
    """The gradients reaching each layer's neurons (captured by hooks) underflow to subnormals
    without the flush and hold none with it; the input gradient keeps its bits."""
    spec = network_from_tokens((1, 8, 8), ["dense:48"], 10,
                               NeuronSpec(threshold=1.25, current_decay=0.25,
                                          voltage_decay=0.03, sigma=1.0),
                               EncodingSpec(kind="direct", timesteps=16, input_bits=4))
    model = SpikingNetwork(spec, seed=0).eval()
    x = torch.rand((16, 1, 8, 8), generator=torch.Generator().manual_seed(2))
    y = torch.arange(16) % 10
    attack = Attack(model, eps=0.1, eot=4)
    seen: list[torch.Tensor] = []

    def keep_gradient(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if args[0].requires_grad:
            args[0].register_hook(seen.append)

    for block in model.blocks:
        block.neuron.register_forward_pre_hook(keep_gradient)

    def step(flushed: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        seen.clear()
        model.generator.manual_seed(7)
        if flushed:
            g = attack.loss_and_grad(x, y)[1]
        else:  # the same step without the flush
            xi = x.clone().requires_grad_(True)
            with frozen(model):
                (g,) = torch.autograd.grad(attack.draw_losses(xi, y).sum(), xi)
        return g, list(seen)

    with attacker_surrogate(model, parse_surrogate("width=0.02")):
        plain, plain_inner = step(False)
        flushed, flushed_inner = step(True)
    assert len(plain_inner) == len(flushed_inner) == 2
    assert any(_subnormal(g).any() for g in plain_inner)  # the case: gradients underflow
    assert not any(_subnormal(g).any() for g in flushed_inner)
    big = plain.abs() >= 1e-30
    assert big.sum() > 50 and torch.equal(flushed[big], plain[big])
