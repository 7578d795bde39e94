"""FGSM: one signed-gradient step of size eps (Goodfellow et al. 2015), with EOT gradients."""

from __future__ import annotations

import torch

from randhet.attack.base import Attack


class FGSM(Attack):
    """``x_adv = clip(x + eps * sign(g))``, g the input gradient of the cross-entropy averaged
    over ``eot`` decay draws (batched, see :meth:`Attack.loss_and_grad`). eps on [0, 1] pixels."""

    name = "fgsm"

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, grad = self.loss_and_grad(x, y)
        return self.project(x + self.eps * grad.sign(), x)
