"""APGD-CE (Croce & Hein 2020, AutoAttack) with EOT, through torchattacks' implementation.

AutoAttack's ``version='rand'`` (for randomized defenses) runs APGD with ``eot_iter = 20``
and one restart, 100 steps: those are the defaults here. Unlike randhet's own attacks,
torchattacks draws its EOT samples in a LOOP, one forward/backward pass per draw.

What torchattacks does that matters for a randomized network (faithful to AutoAttack):

- it calls ``model.eval()``; RandHet draws fresh decays in eval mode too (checked in the tests);
- the EOT gradient is the mean over ``eot`` draws, but the loss that steers the step size and
  picks the best point, and the "fooled" test, come from the LAST draw of each step alone;
- ``seed`` reseeds torch's global RNG (the starting points), not the model's own generator,
  which keeps drawing decays; this wrapper restores the global RNG state afterwards;
- by default a sample misclassified by one clean pass is not attacked, and a sample never
  "fooled" (on a single draw) is returned unperturbed. ``best_loss=True`` instead returns, for
  every sample, the point with the highest (single-draw) loss over the restarts.
"""

from __future__ import annotations

import torch

from randhet.attack.base import Attack


class _Flat(torch.nn.Module):
    """Presents inputs of any shape [B, ...] to torchattacks as [B, 1, 1, N] (it assumes 4-D
    images) and maps them back before the wrapped model; output: the model's logits."""

    def __init__(self, model: torch.nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], *self.shape))


class APGD(Attack):
    """L-inf APGD-CE with ``eot`` looped draws per step (torchattacks ``APGD``).

    ``steps`` iterations, ``restarts`` random restarts, ``seed`` for the starting points,
    ``rho`` the step-size decrease threshold, ``best_loss`` see the module docstring.
    """

    name = "apgd"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 20, steps: int = 100,
        restarts: int = 1, seed: int = 0, rho: float = 0.75, best_loss: bool = False,
    ) -> None:
        super().__init__(model, eps=eps, eot=eot)
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.seed = seed
        self.rho = rho
        self.best_loss = best_loss

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torchattacks import APGD as TorchattacksAPGD  # optional: only APGD needs it

        flat = _Flat(self.model, tuple(x.shape[1:]))
        atk = TorchattacksAPGD(
            flat, norm="Linf", eps=self.eps, steps=self.steps, n_restarts=self.restarts,
            seed=self.seed, loss="ce", eot_iter=self.eot, rho=self.rho, verbose=False,
        )
        x4 = x.reshape(x.shape[0], 1, 1, -1)
        devices = [x.device] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            if self.best_loss:  # torchattacks seeds only in its default branch
                torch.manual_seed(self.seed)
                _, x_adv = atk.perturb(x4, y, best_loss=True)
            else:
                x_adv = atk(x4, y)
        return self.project(x_adv.reshape(x.shape), x)
