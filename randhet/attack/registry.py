"""Attack names -> classes, and :func:`make_attack`."""

from __future__ import annotations

from typing import Any

import torch

from randhet.attack.apgd import APGD
from randhet.attack.base import Attack
from randhet.attack.fgsm import FGSM
from randhet.attack.noise import RandomNoise
from randhet.attack.pgd import PGD, PGDLargeEps
from randhet.attack.transfer import Transfer
from randhet.errors import ConfigError

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, PGDLargeEps, APGD, RandomNoise, Transfer)
}


def make_attack(name: str, model: torch.nn.Module, eps: float, **opts: Any) -> Attack:
    """The attack ``name`` on ``model`` at L-inf radius ``eps`` ([0, 1] pixels); ``opts`` are
    the class's keyword options (``eot``, ``steps``, ...). ``model`` is the network whose
    gradients are used: for ``transfer`` the source (``attack_name=`` picks the inner attack).
    """
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r} (available: {', '.join(sorted(ATTACKS))})")
    return ATTACKS[name](model, eps=eps, **opts)
