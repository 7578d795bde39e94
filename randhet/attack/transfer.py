"""Transfer attack: adversarial inputs crafted on one model, meant for another."""

from __future__ import annotations

from typing import Any

import torch

from randhet.attack.base import Attack


class Transfer(Attack):
    """Crafts with the attack ``attack_name`` (a registry name, options ``**opts``) on
    ``source_model`` (e.g. the sigma = 0 twin) and returns those inputs unchanged for the
    target. The target is never queried: ``self.model`` is the source.
    """

    name = "transfer"

    def __init__(
        self, source_model: torch.nn.Module, attack_name: str = "pgd", *, eps: float,
        eot: int = 1, **opts: Any,
    ) -> None:
        from randhet.attack.registry import make_attack

        super().__init__(source_model, eps=eps, eot=eot)
        if attack_name == self.name:
            raise ValueError("a transfer attack cannot wrap another transfer attack")
        self.attack_name = attack_name
        self.inner = make_attack(attack_name, source_model, eps, eot=eot, **opts)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(x, y)
