"""APGD (Croce and Hein 2020, the attack of AutoAttack) with EOT, randhet's own: every decision
it makes is steered by the loss averaged over the EOT draws.

AutoAttack's 'rand' version runs APGD with 20 EOT draws per step, where the draws are taken in a
loop and its step size, its best point and its "fooled" test follow the loss of the last draw
alone (torchattacks does the same). Here one batched pass per step gives the mean loss of
``eot`` draws and its gradient, and that mean steers everything:

- step ``x1 = P(x + eta * sign(g))``, then momentum ``P(x + 0.75 (x1 - x) + 0.25 (x - x_prev))``
  (no momentum on the first step); ``eta`` starts at ``2 eps``, per sample;
- checkpoints after 22 % of the steps, then at intervals shrinking by 3 % of the steps to at
  least 6 %; at each, a sample's step halves (and it restarts from its best point) where the
  loss rose in at most ``rho`` (0.75) of the steps since the last checkpoint, or where the step
  was not halved at the last checkpoint and the best loss has not moved since;
- the point returned is, per sample, the one with the highest EOT loss seen (over restarts too).
"""

from __future__ import annotations

import torch

from randhet.attack.base import Attack


def checkpoints(steps: int) -> list[int]:
    """The iterations (1-based) after which the step size is checked, as AutoAttack runs them:
    a first interval of ``int(0.22 steps)``, each next one ``int(0.03 steps)`` shorter, never
    under ``int(0.06 steps)`` (each at least 1); Croce and Hein's p_j = 0, 0.22, 0.41, ... in
    integers."""
    interval = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    marks, at = [], interval
    while at < steps:
        marks.append(at)
        interval = max(interval - shrink, shortest)
        at += interval
    return marks


class APGD(Attack):
    """L-inf APGD on the EOT loss (``loss``: ce or dlr; ``readout`` as every attack).

    ``steps`` iterations, ``restarts`` random starts (the attack's own generator, seeded with
    ``seed``), ``rho`` the fraction of rising steps below which the step size halves.
    """

    name = "apgd"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 20, steps: int = 100,
        restarts: int = 1, seed: int = 0, rho: float = 0.75, loss: str = "ce",
        readout: str = "counts",
    ) -> None:
        super().__init__(model, eps=eps, eot=eot, loss=loss, readout=readout)
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.seed = seed
        self.rho = float(rho)
        self.generator = torch.Generator().manual_seed(seed)

    def run_once(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One run from a uniform random start: the best point and its EOT loss [B]."""
        b = len(x)
        shape = (b, *([1] * (x.dim() - 1)))
        u = torch.rand(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        x_adv = self.project(x + (2 * u - 1) * self.eps, x)
        loss, grad = self.loss_and_grad(x_adv, y)
        best, best_loss, best_grad = x_adv.clone(), loss.clone(), grad.clone()
        eta = torch.full(shape, 2 * self.eps, dtype=x.dtype)
        x_prev = x_adv.clone()
        marks = set(checkpoints(self.steps))
        since = 0  # steps since the last checkpoint
        rises = torch.zeros(b)
        halved_last = torch.ones(b, dtype=torch.bool)  # AutoAttack: no check before the first
        best_at_last = best_loss.clone()
        for i in range(self.steps):
            z = self.project(x_adv + eta * grad.sign(), x)
            a = 0.75 if i > 0 else 1.0
            x_new = self.project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x)
            x_prev, x_adv = x_adv, x_new
            new_loss, grad = self.loss_and_grad(x_adv, y)
            rises += (new_loss > loss).float()
            loss = new_loss
            better = loss > best_loss
            best[better], best_loss[better], best_grad[better] = (
                x_adv[better], loss[better], grad[better])
            since += 1
            if i + 1 in marks:
                stalled = rises <= self.rho * since
                stuck = ~halved_last & (best_at_last >= best_loss)
                halve = stalled | stuck
                eta[halve] /= 2
                x_adv[halve], grad[halve] = best[halve], best_grad[halve]
                halved_last, best_at_last = halve, best_loss.clone()
                rises.zero_()
                since = 0
        return best, best_loss

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best, best_loss = self.run_once(x, y)
        for _ in range(self.restarts - 1):
            cand, loss = self.run_once(x, y)
            better = loss > best_loss
            best[better], best_loss[better] = cand[better], loss[better]
        return best
