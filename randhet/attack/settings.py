"""The robustness protocol's settings, owned by the attack package: the ``[attack]`` table of a
config and the flags of ``randhet attack`` both become a :class:`ProtocolConfig` through
:meth:`ProtocolConfig.from_table`, with one set of defaults and one set of rules.

This module depends only on the core (errors), so the config loader validates the ``[attack]``
table when a config is loaded, before anything is trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Any

from randhet.errors import ConfigError

# the attacks of the registry (randhet.attack.registry maps each name to its class)
ATTACK_NAMES: tuple[str, ...] = ("fgsm", "pgd", "pgd_large_eps", "apgd", "square", "noise")
TARGETS: tuple[str, ...] = ("float", "torch", "emulator", "lava")
ITERATIVE: tuple[str, ...] = ("pgd", "apgd", "pgd_large_eps")



@dataclass(frozen=True)
class Surrogate:
    """The attacker's spike surrogate (its forward spikes are always the network's own).

    ``width``: SLAYER's exponential surrogate ``exp(-|V - theta| / w)`` with ``w`` this many
    thresholds (None: as the network trained); ``straight_through``: dS/dV = 1 instead.
    """

    width: float | None = None
    straight_through: bool = False

    @property
    def label(self) -> str:
        """``trained``, ``width=W`` or ``straight-through``."""
        if self.straight_through:
            return "straight-through"
        return "trained" if self.width is None else f"width={self.width:g}"


# table key -> inclusive (lower, upper) bounds
_RANGES: dict[str, tuple[float, float]] = {
    "eot": (1, 10000),
    "steps": (1, 100000),
    "restarts": (1, 1000),
    "draws": (1, 10000),
    "samples": (1, 1 << 30),
    "batch_size": (1, 1 << 20),
    "surrogate_tau": (0.0, 1000.0),
}
# what a user sets (config table and command line); the other fields are the protocol's own
TABLE_KEYS: tuple[str, ...] = ("eps", "attacks", "eot", "steps", "restarts", "draws", "samples",
                               "batch_size", "targets", "surrogate_tau", "seed")


@dataclass(frozen=True)
class ProtocolConfig:
    """What to run. ``eps`` on [0, 1] pixels (L-inf), sorted; ``eot`` draws per gradient;
    ``draws``: fresh draws for scoring; ``targets``: any of float, torch, emulator, lava (torch
    always: the flags are computed on it); ``surrogate_tau``: the attacker's surrogate width
    (None = as trained)."""

    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    attacks: tuple[str, ...] = ("fgsm", "pgd", "noise")
    eot: int = 20
    steps: int = 10
    restarts: int = 2  # the fewest that pass the convergence check on the demo (4 seeds)
    draws: int = 10
    samples: int = 200
    batch_size: int = 50  # samples per chunk: the unit of seeding and of work per process
    targets: tuple[str, ...] = ("float", "torch", "emulator")
    lava_spot_samples: int = 8
    surrogate_tau: float | None = None
    seed: int = 0
    transfer: bool = True  # PGD crafted on the sigma = 0 twin, scored on the network
    tolerance: float = 0.03  # minimum accuracy slack for the ordering flags (else 2 std errors)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """ConfigError unless the user-settable fields obey :meth:`from_table`'s rules."""
        ProtocolConfig.from_table(self.to_table(), name=lambda key: f"attack setting '{key}'")

    def to_table(self) -> dict[str, Any]:
        """The user-settable part as a config table (lists, ``surrogate_tau`` 0 = as trained)."""
        d = self.to_dict()
        table = {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in TABLE_KEYS}
        table["surrogate_tau"] = float(self.surrogate_tau or 0.0)
        return table

    @classmethod
    def from_table(cls, table: dict[str, Any],
                   name: Callable[[str], str] = lambda key: f"'attack.{key}'") -> ProtocolConfig:
        """Validate a table of :data:`TABLE_KEYS` (missing keys take the defaults; others are
        refused) and build the settings; ConfigError naming the key (``name(key)``) otherwise."""
        defaults = cls().to_table()
        unknown = set(table) - set(defaults)
        if unknown:
            raise ConfigError(f"unknown attack setting(s) {sorted(unknown)}")
        t = {**defaults, **table}
        for key, (lo, hi) in _RANGES.items():
            v = t[key]
            if (isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi
                    or (isinstance(v, float) and math.isnan(v))):
                raise ConfigError(f"{name(key)} must be in [{lo:g}, {hi:g}]; got {v!r}")
        eps = t["eps"]
        if (not eps or any(isinstance(e, bool) or not isinstance(e, int | float)
                           or not 0 <= e <= 1 for e in eps)):
            raise ConfigError(f"{name('eps')} must be a non-empty list of numbers in [0, 1]; "
                              f"got {eps!r}")
        for key, what, allowed in (("attacks", "attack", ATTACK_NAMES),
                                   ("targets", "target", TARGETS)):
            bad = [v for v in t[key] if v not in allowed]
            if bad or not t[key]:
                hint = ("; the transfer check runs beside every PGD curve (randhet attack "
                        "--transfer-from RUN_DIR picks its source model)"
                        if "transfer" in bad else "")
                got = f"unknown {what} {', '.join(map(repr, bad))}" if bad else "none given"
                raise ConfigError(f"{name(key)}: {got} (available: {', '.join(allowed)}){hint}")
        if "torch" not in t["targets"]:
            raise ConfigError(f"{name('targets')} must include torch (the protocol's flags are "
                              "computed on the torch model)")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in t.items() if k in known}
        return cls(**{**values, "eps": tuple(sorted({float(e) for e in eps})),
                      "attacks": tuple(dict.fromkeys(t["attacks"])),
                      "targets": tuple(dict.fromkeys(t["targets"])),
                      "surrogate_tau": float(t["surrogate_tau"]) or None})


def as_eps_list(text: str) -> tuple[float, ...]:
    """Parse ``0,1/255,2/255,0.1`` into floats (fractions allowed); ValueError if malformed."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        v = float(Fraction(part))
        if not 0 <= v <= 1:
            raise ValueError(f"eps {part} is outside [0, 1]")
        values.append(v)
    if not values:
        raise ValueError("no eps given")
    return tuple(sorted(set(values)))
