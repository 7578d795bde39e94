"""Square attack (Andriushchenko et al. 2020), L-inf, gradient-free: it only reads output scores,
so it runs on the torch model and directly on the deployed integer network (the emulator), which
has no gradient at all.

Start: vertical stripes of +-eps. Each step changes one square window (side from the paper's
schedule for ``p``, the fraction of pixels, halving from ``p_init`` as the steps go by; one
window position per step for the batch) to a fresh +-eps per channel, and keeps the change
where it lowers the margin ``z_y - max_{i != y} z_i`` averaged over ``draws`` fresh draws. The
candidate and the incumbent are scored on the SAME draws (the model's generator is seeded alike
for both: paired, so a lucky draw does not make a change stick), at twice the cost of scoring the
candidate alone.
"""

from __future__ import annotations

import math

import torch

from randhet.attack.base import Attack, draw_seed

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # on a 10,000-step scale


def fraction(p_init: float, step: int, steps: int) -> float:
    """The paper's schedule for the window's share of the pixels at ``step`` of ``steps``
    (rescaled to 10,000 steps): ``p_init``, halved after 10, 50, 200, 500, 1000, 2000, 4000,
    6000 and 8000 steps."""
    t = int(step / steps * 10000)
    return p_init / 2 ** sum(t > bound for bound in _HALVINGS)


class Square(Attack):
    """L-inf Square attack on the mean margin over ``draws`` fresh draws.

    ``model``: any module whose forward gives class scores [B, classes] with fresh randomness
    drawn from its ``generator`` (a torch model, or the deployed network as
    :class:`~randhet.deploy.predictors.DeployedScores`). ``steps`` queries of candidate and
    incumbent, ``p_init`` the first window's share of the pixels, ``seed`` the attack's own
    generator (stripes, windows, signs and the draws' seeds). With ``restarts`` > 1 it starts
    again from new stripes and keeps, per sample, the run with the lowest mean margin on one
    common set of fresh draws.
    """

    name = "square"

    def __init__(self, model: torch.nn.Module, *, eps: float, draws: int = 4, steps: int = 100,
                 p_init: float = 0.8, seed: int = 0, restarts: int = 1) -> None:
        super().__init__(model, eps=eps, eot=draws)
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        self.restarts = int(restarts)
        if not 0 < p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {p_init}")
        self.steps = int(steps)
        self.p_init = float(p_init)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def _signs(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(0, 2, shape, generator=self.generator).float() * 2 - 1

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best = self.run_once(x, y)
        if self.restarts == 1:
            return best
        runs = [best] + [self.run_once(x, y) for _ in range(self.restarts - 1)]
        seed = draw_seed(self.generator)
        margins = torch.stack([self.mean_margin(r, y, seed) for r in runs])
        pick = margins.argmin(0)
        return torch.stack(runs)[pick, torch.arange(len(x))]

    def run_once(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One run from fresh stripes: the inputs it ends with."""
        img = x.reshape(len(x), *_as_image(x.shape[1:]))
        b, c, h, w = img.shape
        best = (img + self.eps * self._signs((b, c, 1, w))).clamp(0, 1)
        lo, hi = (img - self.eps).clamp(0, 1), (img + self.eps).clamp(0, 1)
        for step in range(self.steps):
            side = round(math.sqrt(fraction(self.p_init, step, self.steps) * h * w))
            side = max(1, min(side, h - 1 if h > 1 else 1, w))
            r = int(torch.randint(0, h - side + 1, (1,), generator=self.generator))
            q = int(torch.randint(0, w - side + 1, (1,), generator=self.generator))
            cand = best.clone()
            window = (slice(None), slice(None), slice(r, r + side), slice(q, q + side))
            cand[window] = (img[window] + self.eps * self._signs((b, c, 1, 1))).clamp(
                lo[window], hi[window])
            seed = draw_seed(self.generator)
            flat = (len(x), *x.shape[1:])
            old = self.mean_margin(best.reshape(flat), y, seed)
            new = self.mean_margin(cand.reshape(flat), y, seed)
            better = new < old
            best[better] = cand[better]
        return self.project(best.reshape(x.shape), x)


def _as_image(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A sample's shape as (C, H, W): images as they are, anything else as one row."""
    if len(shape) == 3:
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    return (1, 1, int(math.prod(shape)))
