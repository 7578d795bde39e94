"""The transfer attack: a wrapper, not an attack of its own (kept apart from the attacks, as
torchattacks keeps its wrappers). It runs any attack on a *source* model and hands the inputs
to another network, which is never queried: a black-box check that the white-box attack on the
network itself is stronger.
"""

from __future__ import annotations

import torch

from randhet.attack.base import Attack


class Transfer:
    """``Transfer(attack)(x, y)``: ``attack``'s adversarial inputs, crafted on its own model
    (``source``, e.g. the sigma = 0 twin or another run), for scoring on a target network."""

    def __init__(self, attack: Attack) -> None:
        if not isinstance(attack, Attack):
            raise TypeError(f"Transfer wraps an Attack, got {type(attack).__name__}")
        self.attack = attack

    @property
    def source(self) -> torch.nn.Module:
        """The model whose gradients craft the inputs."""
        return self.attack.model

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.attack(x, y)
