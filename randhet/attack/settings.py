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
GRADIENT: tuple[str, ...] = ("fgsm", *ITERATIVE)  # attacks that follow an input gradient



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
    "square_steps": (1, 1000000),
    "square_draws": (1, 10000),
    "draws": (1, 10000),
    "selection_draws": (1, 10000),
    "doublings": (0, 20),
    "max_doublings": (0, 20),
    "convergence_margin": (0.0, 1.0),
    "samples": (1, 1 << 30),
    "batch_size": (1, 1 << 20),
}
# what a user sets (config table and command line); the other fields are the protocol's own
TABLE_KEYS: tuple[str, ...] = ("eps", "attacks", "losses", "readouts", "surrogates", "eot",
                               "steps", "restarts", "square_steps", "square_draws",
                               "square_targets", "draws", "selection_draws", "doublings",
                               "max_doublings", "convergence_margin", "samples", "batch_size",
                               "targets", "seed")
LOSS_NAMES: tuple[str, ...] = ("ce", "dlr")
READOUT_NAMES: tuple[str, ...] = ("counts", "voltage", "current")
SQUARE_TARGETS: tuple[str, ...] = ("torch", "emulator")
# what each doubling of the budget doubles, in turn, for every member (Square: its restarts,
# its queries, its draws per query)
AXES: tuple[str, ...] = ("restarts", "steps", "eot")


def parse_surrogate(text: str) -> Surrogate:
    """``trained``, ``straight-through`` or ``width=W`` (W > 0, in thresholds)."""
    if text == "trained":
        return Surrogate()
    if text == "straight-through":
        return Surrogate(straight_through=True)
    if text.startswith("width="):
        try:
            width = float(text.removeprefix("width="))
        except ValueError:
            width = float("nan")
        if width > 0 and math.isfinite(width):
            return Surrogate(width=width)
    raise ValueError(f"surrogate {text!r} is not trained, straight-through or width=W (W > 0)")


@dataclass(frozen=True)
class Budget:
    """One rung of the budget ladder: ``level`` doublings above the configured budget, each
    doubling one of :data:`AXES` in turn (restarts, then iterations at a fixed step, then EOT
    draws, then restarts again ...), for Square its restarts, its queries and its draws per
    query alike."""

    level: int
    steps: int
    restarts: int
    eot: int
    square_steps: int
    square_draws: int

    @property
    def doubled(self) -> str:
        """What this rung doubled over the one below (empty at level 0)."""
        return AXES[(self.level - 1) % len(AXES)] if self.level else ""


@dataclass(frozen=True)
class ProtocolConfig:
    """What to run. ``eps`` on [0, 1] pixels (L-inf), sorted.

    The ensemble crosses every gradient attack of ``attacks`` (pgd, apgd; fgsm as one
    single-step member) with every loss of ``losses``, readout of ``readouts`` and attacker's
    surrogate of ``surrogates``, and adds Square on each of ``square_targets`` (torch: the
    quantized torch model; emulator: the deployed integer network, no gradient). ``noise`` is a
    baseline, never an ensemble member. Gradient attacks run ``steps`` iterations with ``eot``
    draws per step and ``restarts``; Square ``square_steps`` queries of ``square_draws`` draws.
    Per sample, the ensemble keeps the input with the lowest accuracy over ``selection_draws``
    selection draws and scores it on ``draws`` independent scoring draws on every target of
    ``targets`` (torch always). The budget is doubled (:class:`Budget`) at least ``doublings``
    times and at most ``max_doublings`` times, until the latest doubling of every axis (restarts,
    iterations, EOT) no longer lowered the ensemble by more than ``convergence_margin`` (a
    paired one-sided test at ``significance``). Square
    on the emulator, whose every query costs about ten of the torch model's, runs at the first
    rung only (its inputs stay candidates at every rung); Square on the torch model, the same
    arithmetic bit for bit on Lava's datapath, carries the doublings.
    """

    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    attacks: tuple[str, ...] = ("fgsm", "apgd", "square", "noise")
    losses: tuple[str, ...] = ("ce", "dlr")
    readouts: tuple[str, ...] = ("counts", "voltage")
    surrogates: tuple[str, ...] = ("trained", "width=0.3", "straight-through")
    eot: int = 20
    steps: int = 50
    restarts: int = 1
    square_steps: int = 500
    square_draws: int = 4
    square_targets: tuple[str, ...] = ("torch", "emulator")
    draws: int = 10
    selection_draws: int = 10
    doublings: int = 3
    max_doublings: int = 5
    convergence_margin: float = 0.01  # a doubling may lower the ensemble this much and pass
    samples: int = 200
    batch_size: int = 50  # samples per chunk: the unit of seeding and of work per process
    targets: tuple[str, ...] = ("float", "torch", "emulator")
    lava_spot_samples: int = 8
    seed: int = 0
    transfer: bool = True  # the gradient member crafted on the sigma = 0 twin, scored here
    tolerance: float = 0.03  # minimum accuracy slack for the ordering flags (else 2 std errors)
    significance: float = 0.05  # of the paired one-sided test of each doubling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """ConfigError unless the user-settable fields obey :meth:`from_table`'s rules."""
        ProtocolConfig.from_table(self.to_table(), name=lambda key: f"attack setting '{key}'")

    def to_table(self) -> dict[str, Any]:
        """The user-settable part as a config table (lists for tuples)."""
        d = self.to_dict()
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in TABLE_KEYS}

    def surrogate_choices(self) -> tuple[Surrogate, ...]:
        return tuple(parse_surrogate(s) for s in self.surrogates)

    def budget(self, level: int) -> Budget:
        """The budget ``level`` doublings up (:class:`Budget`)."""
        times = {axis: 0 for axis in AXES}
        for k in range(level):
            times[AXES[k % len(AXES)]] += 1
        return Budget(level, self.steps << times["steps"], self.restarts << times["restarts"],
                      self.eot << times["eot"], self.square_steps << times["steps"],
                      self.square_draws << times["eot"])

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
        if t["max_doublings"] < t["doublings"]:
            raise ConfigError(f"{name('max_doublings')} must be at least {name('doublings')} "
                              f"({t['doublings']}); got {t['max_doublings']}")
        eps = t["eps"]
        if (not eps or any(isinstance(e, bool) or not isinstance(e, int | float)
                           or not 0 <= e <= 1 for e in eps)):
            raise ConfigError(f"{name('eps')} must be a non-empty list of numbers in [0, 1]; "
                              f"got {eps!r}")
        for key, what, allowed in (("attacks", "attack", ATTACK_NAMES),
                                   ("targets", "target", TARGETS),
                                   ("losses", "loss", LOSS_NAMES),
                                   ("readouts", "readout", READOUT_NAMES),
                                   ("square_targets", "Square target", SQUARE_TARGETS)):
            bad = [v for v in t[key] if v not in allowed]
            if bad or (not t[key] and key != "square_targets"):
                hint = ("; the transfer check runs beside the ensemble (randhet attack "
                        "--transfer-from RUN_DIR picks its source model)"
                        if "transfer" in bad else "")
                got = f"unknown {what} {', '.join(map(repr, bad))}" if bad else "none given"
                raise ConfigError(f"{name(key)}: {got} (available: {', '.join(allowed)}){hint}")
        if not t["surrogates"]:
            raise ConfigError(f"{name('surrogates')}: none given")
        for text in t["surrogates"]:
            try:
                parse_surrogate(str(text))
            except ValueError as exc:
                raise ConfigError(f"{name('surrogates')}: {exc}") from None
        if "torch" not in t["targets"]:
            raise ConfigError(f"{name('targets')} must include torch (the protocol's flags are "
                              "computed on the torch model)")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in t.items() if k in known}
        lists = ("attacks", "targets", "losses", "readouts", "surrogates", "square_targets")
        return cls(**{**values, "eps": tuple(sorted({float(e) for e in eps})),
                      **{k: tuple(dict.fromkeys(str(v) for v in t[k])) for k in lists}})


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
