"""Attack names -> classes, and :func:`make_attack`. The names are those of
:data:`randhet.attack.settings.ATTACK_NAMES` (what a config or ``--attacks`` may name); the
transfer check is a wrapper (:class:`~randhet.attack.transfer.Transfer`), not an attack here."""

from __future__ import annotations

from typing import Any

import torch

from randhet.attack.apgd import APGD
from randhet.attack.base import Attack
from randhet.attack.fgsm import FGSM
from randhet.attack.nes import NES
from randhet.attack.noise import RandomNoise
from randhet.attack.pgd import PGD, PGDLargeEps
from randhet.attack.settings import ATTACK_NAMES
from randhet.attack.square import Square
from randhet.errors import ConfigError

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, PGDLargeEps, APGD, Square, NES, RandomNoise)
}


def make_attack(name: str, model: torch.nn.Module, eps: float, **opts: Any) -> Attack:
    """The attack ``name`` on ``model`` at L-inf radius ``eps`` ([0, 1] pixels); ``opts`` are
    the class's keyword options (``eot``, ``steps``, ...). ``model`` is the network whose
    gradients are used.
    """
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r} (available: {', '.join(ATTACK_NAMES)})")
    return ATTACKS[name](model, eps=eps, **opts)
