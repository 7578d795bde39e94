"""NES attack (Ilyas et al. 2018; Uesato et al. 2018's SPSA is its sibling), L-inf,
gradient-free: it reads only output scores and *estimates* the gradient of the margin from
them, so it needs neither the spike surrogate nor the network's own gradient.

Each step draws ``samples`` antithetic Gaussian directions ``u`` per input, queries the margin
``z_y - max_{i != y} z_i`` at ``x + sigma u`` and ``x - sigma u`` (each query a fresh draw of
the network's randomness: the estimate averages over the draws as EOT does) and steps
``x <- P(x - eta * sign(sum (m+ - m-) u))`` with ``eta`` on a cosine schedule from ``2 eps``
to ``eps / 16``. The point returned is, per sample, the iterate with the lowest margin over
``draws`` fresh draws, every iterate scored on the same draws (paired, as Square's
acceptance). ``sigma`` is ``smoothing * eps``: the margin of spike counts is piecewise
constant, so the estimate is the gradient of the margin smoothed over that radius.
"""

from __future__ import annotations

import math

import torch

from randhet.attack.base import Attack, draw_seed
from randhet.attack.losses import margin

PROBES_PER_PASS = 4096  # probe inputs per forward pass (memory bound)


class NES(Attack):
    """L-inf NES on the margin: ``steps`` steps of ``2 * samples`` queries each, ``restarts``
    runs (the first from the clean input, the others from uniform random starts), ``seed``
    the attack's own generator (directions, starts, the draws' seeds)."""

    name = "nes"

    def __init__(self, model: torch.nn.Module, *, eps: float, draws: int = 4,
                 samples: int = 64, steps: int = 100, smoothing: float = 2.0, seed: int = 0,
                 restarts: int = 1) -> None:
        super().__init__(model, eps=eps, eot=draws)
        if steps < 1 or restarts < 1 or samples < 1:
            raise ValueError(f"steps, samples and restarts must be >= 1, got {steps}, "
                             f"{samples}, {restarts}")
        if not smoothing > 0:
            raise ValueError(f"smoothing must be > 0, got {smoothing}")
        self.samples, self.steps, self.restarts = int(samples), int(steps), int(restarts)
        self.sigma = float(smoothing) * self.eps
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def estimate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The antithetic estimate of the margin's gradient at ``x`` (up to a positive
        factor, which the sign step ignores), [B, ...]."""
        b, shape = len(x), x.shape[1:]
        per_pass = max(1, PROBES_PER_PASS // (2 * b))
        g = torch.zeros_like(x)
        done = 0
        while done < self.samples:
            k = min(per_pass, self.samples - done)
            u = torch.randn((k, *x.shape), generator=self.generator, dtype=x.dtype)
            probes = torch.cat([(x[None] + self.sigma * u), (x[None] - self.sigma * u)])
            m = margin(self.model(probes.clamp(0, 1).reshape(2 * k * b, *shape)).float(),
                       y.repeat(2 * k)).reshape(2, k, b)
            diff = (m[0] - m[1]).reshape(k, b, *([1] * len(shape)))
            g += (diff * u).sum(0)
            done += k
        return g

    def run_once(self, start: torch.Tensor, x: torch.Tensor, y: torch.Tensor, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run from ``start``: the best iterate and its margin [B] on the draws ``seed``."""
        x_adv = self.project(start, x)
        best, best_margin = x_adv.clone(), self.mean_margin(x_adv, y, seed)
        for i in range(self.steps):
            eta = 2 * self.eps * 0.5 * (1 + math.cos(math.pi * i / self.steps)) + self.eps / 16
            x_adv = self.project(x_adv - eta * self.estimate(x_adv, y).sign(), x)
            now = self.mean_margin(x_adv, y, seed)
            better = now < best_margin
            best[better], best_margin[better] = x_adv[better], now[better]
        return best, best_margin

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seed = draw_seed(self.generator)  # one set of draws for every iterate of every run: paired
        best, best_margin = self.run_once(x, x, y, seed)
        for _ in range(self.restarts - 1):
            u = torch.rand(x.shape, generator=self.generator, dtype=x.dtype)
            cand, cand_margin = self.run_once(x + (2 * u - 1) * self.eps, x, y, seed)
            better = cand_margin < best_margin
            best[better], best_margin[better] = cand[better], cand_margin[better]
        return best
