"""Random noise in the eps ball: the baseline every gradient attack must beat."""

from __future__ import annotations

import torch

from randhet.attack.base import Attack


class RandomNoise(Attack):
    """``x_adv = clip(x + u)``, u uniform in [-eps, eps] per pixel (independent of the model
    and of ``eot``); drawn from the attack's own generator, seeded with ``seed`` (the same seed
    gives the same noise), that advances across calls."""

    name = "noise"

    def __init__(
        self, model: torch.nn.Module, *, eps: float, eot: int = 1, seed: int = 0
    ) -> None:
        super().__init__(model, eps=eps, eot=eot)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        u = torch.rand(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        return self.project(x + (2 * u - 1) * self.eps, x)
