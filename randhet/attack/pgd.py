"""L-inf PGD (Madry et al. 2018) with batched EOT gradients, random start and restarts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from randhet.attack.base import Attack


class PGD(Attack):
    """Projected gradient ascent on the EOT cross-entropy, L-inf ball of radius ``eps``.

    ``steps`` signed-gradient steps of size ``alpha`` (pixels; default ``2.5 * eps / steps``),
    each gradient averaged over ``eot`` draws in one batched pass. ``random_start``: begin at a
    uniform point of the ball (drawn from the attack's own generator, seeded with ``seed``: the
    same seed gives the same starts; it advances across restarts and calls; the protocol passes
    a seed per unit of work). Each restart returns its LAST iterate (as Madry et al. and
    torchattacks). With ``restarts > 1`` every restart's result is scored by a fresh EOT loss
    (``eot`` draws, no gradient) and, per sample, the one with the HIGHEST loss is kept (not
    the first misclassified one: with a randomized network "misclassified" on one draw says
    little).
    """

    name = "pgd"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 1, steps: int = 10,
        alpha: float | None = None, random_start: bool = True, restarts: int = 1, seed: int = 0,
    ) -> None:
        super().__init__(model, eps=eps, eot=eot)
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        self.steps = int(steps)
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else float(alpha)
        self.random_start = random_start
        self.restarts = int(restarts)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """The starting point: x, or a uniform draw from the eps ball (clipped to [0, 1])."""
        if not self.random_start:
            return x.clone()
        u = torch.rand(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        return self.project(x + (2 * u - 1) * self.eps, x)

    def run_once(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One restart: ``steps`` projected signed-gradient steps from :meth:`start`."""
        x_adv = self.start(x)
        for _ in range(self.steps):
            _, grad = self.loss_and_grad(x_adv, y)
            x_adv = self.project(x_adv + self.alpha * grad.sign(), x)
        return x_adv

    @torch.no_grad()
    def eot_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample cross-entropy [B] averaged over ``eot`` fresh draws (one batched pass)."""
        logits = self.model(x.repeat(self.eot, *([1] * (x.dim() - 1))))
        loss = F.cross_entropy(logits, y.repeat(self.eot), reduction="none")
        return loss.reshape(self.eot, -1).mean(0)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best = self.run_once(x, y)
        if self.restarts == 1:
            return best
        best_loss = self.eot_loss(best, y)
        for _ in range(self.restarts - 1):
            cand = self.run_once(x, y)
            loss = self.eot_loss(cand, y)
            better = loss > best_loss
            best[better] = cand[better]
            best_loss = torch.where(better, loss, best_loss)
        return best


class PGDLargeEps(PGD):
    """The large-epsilon PGD sweep that BioFlexNet's released code calls "SPGD".

    It is plain L-inf PGD (nothing spiking- or "S"-specific): 20 steps of size ``eps / 4``
    from a random start, run there over eps from 0 to 0.5. Kept as its own name
    so that results can be compared with that code's curves.
    """

    name = "pgd_large_eps"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 1, steps: int = 20,
        alpha: float | None = None, random_start: bool = True, restarts: int = 1, seed: int = 0,
    ) -> None:
        super().__init__(model, eps=eps, eot=eot, steps=steps,
                         alpha=eps / 4 if alpha is None else alpha,
                         random_start=random_start, restarts=restarts, seed=seed)
