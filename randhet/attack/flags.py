"""The protocol's sanity checks (Carlini et al. 2019's checklist, the robustness-protocol notes),
each a :class:`~randhet.attack.results.Flag` computed from measured numbers by a pure function,
so every one can be shown to fail and to pass.

Orderings between accuracies allow for sampling noise (:func:`slack`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from randhet.attack.base import Attack
from randhet.attack.results import Curve, Flag

UNBOUNDED_MAX = 0.01  # accuracy an eps = 1 attack may leave
SNR_MIN = 0.5  # median cosine between independent EOT gradient estimates
RISE_MIN = 0.5  # share of samples whose loss rises along the gradient's sign
FEW = 0.02  # share of samples (at least 2) the gradient-free attack may break alone


def slack(accuracy: float, samples: int, floor: float) -> float:
    """Allowed difference between two accuracies on ``samples`` inputs: two binomial standard
    errors, at least ``floor``."""
    return max(floor, 2.0 * (max(accuracy * (1 - accuracy), 0.0) / max(samples, 1)) ** 0.5)


def unbounded_attack_succeeds(accuracy_at_1: float) -> Flag:
    """At eps = 1 any image can be reached: the ensemble must leave (almost) nothing."""
    return Flag("unbounded_attack_succeeds", accuracy_at_1 <= UNBOUNDED_MAX, accuracy_at_1,
                f"ensemble accuracy at eps = 1 <= {UNBOUNDED_MAX}",
                "an attack that cannot win with an unbounded budget is broken or masked")


def monotone_in_eps(curve: Curve, samples: int, floor: float) -> Flag:
    """A larger budget never helps the model (beyond sampling noise)."""
    m = curve.means()
    rises = [b - a for a, b in zip(m, m[1:], strict=False)]
    worst = max([0.0, *rises])
    ok = all(b <= a + slack(a, samples, floor) for a, b in zip(m, m[1:], strict=False))
    return Flag("monotone_in_eps", ok, worst, "ensemble accuracy never rises with eps beyond "
                "two standard errors", "the largest rise between neighbouring eps")


def _not_above(low: Curve, high: Curve, samples: int, floor: float) -> tuple[bool, float]:
    """Whether ``low``'s accuracy is at most ``high``'s plus two standard errors (:func:`slack`)
    at every eps, and the largest excess of ``low`` over ``high``."""
    pairs = list(zip(low.means(), high.means(), strict=True))
    ok = all(a <= b + slack(b, samples, floor) for a, b in pairs)
    return ok, max((a - b for a, b in pairs), default=0.0)


def iterative_at_least_single_step(iterative: Curve, single: Curve, samples: int,
                                   floor: float) -> Flag:
    """The best iterative member is at least as strong as one FGSM step at every eps."""
    ok, gap = _not_above(iterative, single, samples, floor)
    return Flag("iterative_at_least_single_step", ok, gap,
                "iterative accuracy <= single-step accuracy + two standard errors",
                f"{iterative.name} against {single.name}; value: the largest excess")


def randomness_off_attack_succeeds(twin: Curve, randomized: Curve, samples: int,
                                   floor: float) -> Flag:
    """The same attack on the same weights with sigma = 0 succeeds at least as well."""
    ok, gap = _not_above(twin, randomized, samples, floor)
    return Flag("randomness_off_attack_succeeds", ok, gap,
                "sigma = 0 twin's accuracy <= the randomized network's + two standard errors",
                f"{randomized.name} on the twin; value: the largest excess")


def weaker_than_whitebox(name: str, other: Curve, whitebox: Curve, samples: int,
                         floor: float) -> Flag:
    """A black-box or random input (``other``) must not beat the white-box ensemble."""
    ok, gap = _not_above(whitebox, other, samples, floor)
    return Flag(name, ok, gap, f"ensemble accuracy <= {other.name} accuracy + two standard "
                "errors", "value: the largest amount by which the ensemble trailed it")


def gradient_free_not_stronger(free_only: Sequence[int], samples: int) -> Flag:
    """Gradient masking: samples the gradient-free attack breaks (wrong on most scoring
    draws) that no gradient member breaks, at the worst eps."""
    worst = max(free_only, default=0)
    allowed = max(2, int(FEW * samples))
    return Flag("gradient_free_not_stronger", worst <= allowed, worst / max(samples, 1),
                f"at most {allowed} samples broken by the gradient-free members alone at any eps",
                "more means the gradients are masked: the white-box members miss what a "
                "gradient-free search finds")


def gradient_signal_to_noise(cosines: np.ndarray) -> Flag:
    """Cosine between two independent EOT gradient estimates per sample; its median."""
    med = float(np.median(cosines)) if len(cosines) else float("nan")
    return Flag("gradient_signal_to_noise", med >= SNR_MIN, med,
                f"median cosine between independent EOT gradients >= {SNR_MIN}",
                "below: the EOT gradient is mostly noise; raise the EOT draws")


def loss_rises_along_gradient(rises: np.ndarray) -> Flag:
    """The linearisation predicts a rise ``step * |g|_1 > 0`` of the EOT loss along
    ``step * sign(g)``; the share of samples whose measured loss (same draws) rose. A surrogate
    gradient's size says little, its direction must hold."""
    share = float((np.asarray(rises) > 0).mean()) if len(rises) else float("nan")
    return Flag("loss_rises_along_gradient", share >= RISE_MIN, share,
                f"the loss rises along the gradient's sign for >= {RISE_MIN:.0%} of samples",
                "below: the gradient does not point up the loss (flat, quantized or masked)")


def budget_converged(unconverged: Sequence[float]) -> Flag:
    """Every eps's budget ladder stopped because no axis's latest doubling still lowered the
    ensemble beyond the margin (not at its cap)."""
    return Flag("budget_converged", not unconverged, float(len(unconverged)),
                "no eps where an axis's latest doubling still lowered the ensemble beyond the "
                "margin",
                "not converged at eps " + ", ".join(f"{e:g}" for e in unconverged)
                if unconverged else "every eps converged")


def gradient_cosines(attack: Attack, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-sample cosine between two EOT gradient estimates from independent draws."""
    _, g1 = attack.loss_and_grad(x, y)
    _, g2 = attack.loss_and_grad(x, y)
    a, b = g1.reshape(len(x), -1).double(), g2.reshape(len(x), -1).double()
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)
    return cos.numpy()


def loss_rises(attack: Attack, x: torch.Tensor, y: torch.Tensor, step: float,
               generator: torch.Generator) -> np.ndarray:
    """Per sample with a nonzero gradient: the EOT loss's rise along ``step * sign(grad)``,
    both losses on the same draws (``generator`` reseeded)."""
    state = generator.get_state()
    loss, grad = attack.loss_and_grad(x, y)
    moved = (x + step * grad.sign()).clamp(0, 1)
    generator.set_state(state)
    after = attack.eot_loss(moved, y)
    moving = ((moved - x) * grad).reshape(len(x), -1).sum(1) > 0
    return (after - loss)[moving].numpy()
