"""Every flag of the robustness protocol fails where its check should and passes where it
should: the flags are pure functions of measured numbers (randhet.attack.flags), and the two
gradient probes run on small torch models built to fail or pass them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from randhet.attack import flags
from randhet.attack.base import Attack
from randhet.attack.results import Curve, Point

EPS = (0.0, 0.1, 0.2, 0.3)


def curve(name: str, means: list[float]) -> Curve:
    return Curve(name, "torch", tuple(Point(e, m, 0.0, m, 5, 0.0, 0.0, m, m)
                                      for e, m in zip(EPS, means, strict=True)), 0.0)


def test_unbounded_attack_flag() -> None:
    assert flags.unbounded_attack_succeeds(0.0).ok
    assert flags.unbounded_attack_succeeds(0.01).ok
    assert not flags.unbounded_attack_succeeds(0.05).ok


def test_monotone_flag() -> None:
    assert flags.monotone_in_eps(curve("e", [0.9, 0.5, 0.2, 0.0]), 1000, 0.03).ok
    bad = flags.monotone_in_eps(curve("e", [0.9, 0.3, 0.6, 0.0]), 1000, 0.03)
    assert not bad.ok and bad.value == pytest.approx(0.3)


def test_iterative_flag() -> None:
    fgsm = curve("fgsm", [0.9, 0.6, 0.4, 0.3])
    assert flags.iterative_at_least_single_step(curve("apgd", [0.9, 0.4, 0.2, 0.1]), fgsm,
                                                1000, 0.03).ok
    assert not flags.iterative_at_least_single_step(curve("apgd", [0.9, 0.7, 0.4, 0.3]), fgsm,
                                                    1000, 0.03).ok


def test_randomness_off_flag() -> None:
    randomized = curve("apgd", [0.9, 0.5, 0.3, 0.1])
    assert flags.randomness_off_attack_succeeds(curve("twin", [0.9, 0.3, 0.1, 0.0]),
                                                randomized, 1000, 0.03).ok
    assert not flags.randomness_off_attack_succeeds(curve("twin", [0.9, 0.7, 0.5, 0.3]),
                                                    randomized, 1000, 0.03).ok


def test_weaker_than_whitebox_flags() -> None:
    ensemble = curve("ensemble", [0.9, 0.4, 0.2, 0.0])
    assert flags.weaker_than_whitebox("noise_weaker_than_whitebox",
                                      curve("noise", [0.9, 0.85, 0.8, 0.7]), ensemble,
                                      1000, 0.03).ok
    bad = flags.weaker_than_whitebox("transfer_weaker_than_whitebox",
                                     curve("transfer", [0.9, 0.2, 0.1, 0.0]), ensemble,
                                     1000, 0.03)
    assert not bad.ok and bad.name == "transfer_weaker_than_whitebox"


def test_gradient_free_flag() -> None:
    assert flags.gradient_free_not_stronger([0, 1, 2], 100).ok
    assert not flags.gradient_free_not_stronger([0, 9, 2], 100).ok
    assert flags.gradient_free_not_stronger([3], 200).ok  # 2 % of 200 samples are "a few"


def test_budget_converged_flag() -> None:
    assert flags.budget_converged([]).ok
    bad = flags.budget_converged([0.1, 0.2])
    assert not bad.ok and "0.1, 0.2" in bad.detail


class Linear(torch.nn.Module):
    """Scores ``x @ w``, optionally with fresh noise on the weights at every call (a model
    whose input gradient is mostly noise)."""

    def __init__(self, noise: float = 0.0) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)
        self.w = torch.randn(16, 10, generator=torch.Generator().manual_seed(1))
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        w = self.w + self.noise * torch.randn(len(x), *self.w.shape, generator=self.generator)
        return torch.einsum("bi,bij->bj", x, w.expand(len(x), -1, -1))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(64, 16, generator=g), torch.randint(0, 10, (64,), generator=g)


def test_gradient_signal_to_noise_probe_fails_on_noise_and_passes_on_signal() -> None:
    x, y = data()
    clean = flags.gradient_cosines(Attack(Linear(), eps=0.0, eot=4), x, y)
    noisy = flags.gradient_cosines(Attack(Linear(noise=30.0), eps=0.0, eot=1), x, y)
    assert flags.gradient_signal_to_noise(clean).ok and np.median(clean) > 0.99
    assert not flags.gradient_signal_to_noise(noisy).ok


def test_loss_rise_probe_fails_on_a_masked_model_and_passes_on_a_linear_one() -> None:
    x, y = data()
    plain = Linear()
    rises = flags.loss_rises(Attack(plain, eps=0.0), x, y, 0.05, plain.generator)
    assert flags.loss_rises_along_gradient(rises).ok
    flat = flags.loss_rises(Attack(FlatAround(), eps=0.0), x, y, 0.05, plain.generator)
    assert not flags.loss_rises_along_gradient(flat).ok


class FlatAround(torch.nn.Module):
    """A straight-through gradient through inputs quantized so coarsely that no step inside
    [0, 1] changes them: the gradient predicts a rise that never comes (masked)."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)
        self.w = torch.randn(16, 10, generator=torch.Generator().manual_seed(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        coarse = torch.floor(x * 0.9)  # 0 everywhere in [0, 1]
        return (coarse + (x - x.detach())) @ self.w
