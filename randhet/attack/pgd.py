"""L-inf PGD (Madry et al. 2018) with batched EOT gradients, random start, restarts and the best
iterate kept."""

from __future__ import annotations

import torch

from randhet.attack.base import Attack


class PGD(Attack):
    """Projected signed-gradient ascent on the EOT loss, L-inf ball of radius ``eps``.

    ``steps`` steps of a FIXED size ``alpha`` (pixels; default ``eps / 4``, whatever the number
    of steps: twice the steps is twice the path, more optimisation, not a finer walk), each
    gradient averaged over ``eot`` draws in one batched pass. ``random_start``: begin at a
    uniform point of the ball (the attack's own generator, seeded with ``seed``; it advances
    across restarts and calls). ``keep``: ``best`` returns, per sample, the visited point with
    the highest EOT loss (the loss each step computes anyway, plus one pass for the last
    point); ``last`` the last iterate (Madry et al., torchattacks). Over ``restarts`` the point
    with the highest EOT loss is kept per sample.
    """

    name = "pgd"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 1, steps: int = 10,
        alpha: float | None = None, random_start: bool = True, restarts: int = 1, seed: int = 0,
        loss: str = "ce", readout: str = "counts", keep: str = "best",
    ) -> None:
        super().__init__(model, eps=eps, eot=eot, loss=loss, readout=readout)
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        if keep not in ("best", "last"):
            raise ValueError(f"keep must be best or last, got {keep!r}")
        self.steps = int(steps)
        self.alpha = self.eps / 4 if alpha is None else float(alpha)
        self.random_start = random_start
        self.restarts = int(restarts)
        self.seed = seed
        self.keep = keep
        self.generator = torch.Generator().manual_seed(seed)

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """The starting point: x, or a uniform draw from the eps ball (clipped to [0, 1])."""
        if not self.random_start:
            return x.clone()
        u = torch.rand(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        return self.project(x + (2 * u - 1) * self.eps, x)

    def run_once(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One restart from :meth:`start`: the kept point and its EOT loss [B]."""
        x_adv = self.start(x)
        best, best_loss = x_adv.clone(), torch.full((len(x),), float("-inf"))
        for _ in range(self.steps):
            loss, grad = self.loss_and_grad(x_adv, y)
            if self.keep == "best":
                _keep_better(best, best_loss, x_adv, loss)
            x_adv = self.project(x_adv + self.alpha * grad.sign(), x)
        loss = self.eot_loss(x_adv, y)
        if self.keep == "last":
            return x_adv, loss
        _keep_better(best, best_loss, x_adv, loss)
        return best, best_loss

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best, best_loss = self.run_once(x, y)
        for _ in range(self.restarts - 1):
            cand, loss = self.run_once(x, y)
            _keep_better(best, best_loss, cand, loss)
        return best


def _keep_better(best: torch.Tensor, best_loss: torch.Tensor, cand: torch.Tensor,
                 loss: torch.Tensor) -> None:
    """Where ``loss`` beats ``best_loss``, take the candidate and its loss (in place)."""
    better = loss > best_loss
    best[better] = cand[better]
    best_loss[better] = loss[better]


class PGDLargeEps(PGD):
    """The large-epsilon PGD sweep that BioFlexNet's released code calls "SPGD".

    It is plain L-inf PGD (nothing spiking- or "S"-specific): 20 steps of size ``eps / 4``
    from a random start, run there over eps from 0 to 0.5, the last iterate kept. Kept as its
    own name so that results can be compared with that code's curves.
    """

    name = "pgd_large_eps"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 1, steps: int = 20,
        alpha: float | None = None, random_start: bool = True, restarts: int = 1, seed: int = 0,
        loss: str = "ce", readout: str = "counts", keep: str = "last",
    ) -> None:
        super().__init__(model, eps=eps, eot=eot, steps=steps, alpha=alpha,
                         random_start=random_start, restarts=restarts, seed=seed, loss=loss,
                         readout=readout, keep=keep)
