"""The robustness protocol's settings, owned by the attack package: the ``[attack]`` table of a
config and the flags of ``randhet attack`` both become a :class:`ProtocolConfig` through
:meth:`ProtocolConfig.from_table`, with one set of defaults and one set of rules: the
dataclass's fields are the table's schema (:mod:`randhet.schema`).

This module depends only on the core (errors, schema), so the config loader validates the
``[attack]`` table when a config is loaded, before anything is trained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from randhet import schema
from randhet.errors import ConfigError
from randhet.schema import internal, key

# the attacks of the registry (randhet.attack.registry maps each name to its class)
ATTACK_NAMES: tuple[str, ...] = ("fgsm", "pgd", "pgd_large_eps", "apgd", "square", "nes", "noise")
TARGETS: tuple[str, ...] = ("float", "torch", "emulator", "lava")
ITERATIVE: tuple[str, ...] = ("pgd", "apgd", "pgd_large_eps")
GRADIENT: tuple[str, ...] = ("fgsm", *ITERATIVE)  # attacks that follow an input gradient
GRADIENT_FREE: tuple[str, ...] = ("square", "nes")  # members that read only output scores



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


LOSS_NAMES: tuple[str, ...] = ("ce", "dlr")
READOUT_NAMES: tuple[str, ...] = ("counts", "voltage", "current")
SQUARE_TARGETS: tuple[str, ...] = ("torch", "emulator")
# what each doubling of the budget doubles, in turn, for every member (Square: its restarts,
# its queries, its draws per query)
AXES: tuple[str, ...] = ("restarts", "steps", "eot")
_TRANSFER_HINT = {"transfer": "; the transfer check runs beside the ensemble (randhet attack "
                              "--transfer-from RUN_DIR picks its source model)"}


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
    query alike, for NES its restarts, its steps and its directions per step."""

    level: int
    steps: int
    restarts: int
    eot: int
    square_steps: int
    square_draws: int
    nes_steps: int
    nes_samples: int

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
    quantized torch model; emulator: the deployed integer network, no gradient) and, when asked
    for, NES on the torch model (gradient-free: a gradient estimated from output queries).
    ``noise`` is a baseline, never an ensemble member. Gradient attacks run ``steps`` iterations
    with ``eot`` draws per step and ``restarts``; Square ``square_steps`` queries of
    ``square_draws`` draws; NES ``nes_steps`` steps of ``2 nes_samples`` queries (its best
    iterate chosen on ``square_draws`` draws).
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

    eps: tuple[float, ...] = key(
        "L-inf budgets on [0, 1] pixels (sorted, duplicates dropped)",
        (0.0, 0.05, 0.1, 0.2, 0.3), min=0.0, max=1.0, nonempty=True)
    attacks: tuple[str, ...] = key(
        "attacks run: gradient members, Square, and the noise baseline",
        ("fgsm", "apgd", "square", "noise"), choices=ATTACK_NAMES, nonempty=True,
        item="attack", hints=_TRANSFER_HINT)
    losses: tuple[str, ...] = key("losses of the gradient members", ("ce", "dlr"),
                                  choices=LOSS_NAMES, nonempty=True, item="loss")
    readouts: tuple[str, ...] = key(
        "scores the losses are taken on (output spikes, voltage, current, summed over time)",
        ("counts", "voltage"), choices=READOUT_NAMES, nonempty=True, item="readout")
    surrogates: tuple[str, ...] = key(
        "attacker's spike surrogates: trained, straight-through or width=W (W thresholds)",
        ("trained", "width=0.3", "straight-through"), nonempty=True)
    eot: int = key("fresh draws per gradient (EOT) at the first budget", 20, min=1, max=10000)
    steps: int = key("iterations of the gradient attacks at the first budget", 50,
                     min=1, max=100000)
    restarts: int = key("restarts of the gradient attacks at the first budget", 1,
                        min=1, max=1000)
    square_steps: int = key("Square's queries at the first budget", 500, min=1, max=1000000)
    square_draws: int = key("fresh draws each Square query averages its margin over", 4,
                            min=1, max=10000)
    square_targets: tuple[str, ...] = key(
        "what Square queries: torch, emulator (the deployed integer network)",
        ("torch", "emulator"), choices=SQUARE_TARGETS, item="Square target")
    nes_steps: int = key("NES's steps at the first budget (when attacks has nes)", 100,
                         min=1, max=100000, added=True)
    nes_samples: int = key("NES's antithetic directions per step at the first budget "
                           "(2 queries each)", 64, min=1, max=100000, added=True)
    draws: int = key("independent fresh draws that score each chosen input", 10,
                     min=1, max=10000)
    selection_draws: int = key("fresh draws the ensemble chooses each sample's worst input on",
                               10, min=1, max=10000)
    doublings: int = key("budget doublings run at least (restarts, iterations, EOT in turn)", 3,
                         min=0, max=20)
    max_doublings: int = key("budget doublings at most (then: not converged)", 5,
                             min=0, max=20)
    convergence_margin: float = key(
        "accuracy a doubling may lower the ensemble by and still count as converged", 0.01,
        min=0.0, max=1.0)
    samples: int = key("test samples attacked", 200, min=1, max=1 << 30)
    batch_size: int = key("samples per chunk: the unit of seeding and of work per process", 50,
                          min=1, max=1 << 20)
    targets: tuple[str, ...] = key(
        "scoring targets (torch always: the protocol's flags are computed on it)",
        ("float", "torch", "emulator"), choices=TARGETS, nonempty=True, item="target",
        hints=_TRANSFER_HINT)
    lava_spot_samples: int = internal(8)
    seed: int = key("attack and scoring seed", 0)
    transfer: bool = internal(True)  # the gradient member crafted on the sigma = 0 twin
    tolerance: float = internal(0.03)  # minimum accuracy slack for the ordering flags
    significance: float = internal(0.05)  # of the paired one-sided test of each doubling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def same_as_saved(self, saved: dict[str, Any]) -> bool:
        """Whether ``saved`` (a :meth:`to_dict` written to JSON) is these settings; keys added
        since it was written count as their defaults (:func:`randhet.schema.added_defaults`)."""
        now = json.loads(json.dumps(self.to_dict()))
        return schema.with_added(saved, now, schema.added_defaults(ProtocolConfig)) == now

    def check(self) -> None:
        """ConfigError unless the user-settable fields obey :meth:`from_table`'s rules."""
        ProtocolConfig.from_table(self.to_table(), name=lambda key: f"attack setting '{key}'")

    def to_table(self) -> dict[str, Any]:
        """The user-settable part (:data:`TABLE_KEYS`) as a config table (lists for tuples)."""
        return schema.to_table(self)

    def surrogate_choices(self) -> tuple[Surrogate, ...]:
        return tuple(parse_surrogate(s) for s in self.surrogates)

    def budget(self, level: int) -> Budget:
        """The budget ``level`` doublings up (:class:`Budget`)."""
        times = {axis: 0 for axis in AXES}
        for k in range(level):
            times[AXES[k % len(AXES)]] += 1
        return Budget(level, self.steps << times["steps"], self.restarts << times["restarts"],
                      self.eot << times["eot"], self.square_steps << times["steps"],
                      self.square_draws << times["eot"], self.nes_steps << times["steps"],
                      self.nes_samples << times["eot"])

    @classmethod
    def from_table(cls, table: dict[str, Any],
                   name: Callable[[str], str] = lambda key: f"'attack.{key}'",
                   unknown: Callable[[str], str] = lambda key: f"unknown attack setting '{key}'",
                   ) -> ProtocolConfig:
        """Validate a table of :data:`TABLE_KEYS` (missing keys take the defaults; others are
        refused) and build the settings; ConfigError naming the key (``name(key)``) otherwise."""
        t = schema.merge(cls, schema.defaults(cls), table, error=ConfigError, name=name,
                         unknown=unknown)
        if t["max_doublings"] < t["doublings"]:
            raise ConfigError(f"{name('max_doublings')} must be at least {name('doublings')} "
                              f"({t['doublings']}); got {t['max_doublings']}")
        for text in t["surrogates"]:
            try:
                parse_surrogate(str(text))
            except ValueError as exc:
                raise ConfigError(f"{name('surrogates')}: {exc}") from None
        if "torch" not in t["targets"]:
            raise ConfigError(f"{name('targets')} must include torch (the protocol's flags are "
                              "computed on the torch model)")
        lists = ("attacks", "targets", "losses", "readouts", "surrogates", "square_targets")
        t = {**t, "eps": sorted(set(t["eps"])), **{k: list(dict.fromkeys(t[k])) for k in lists}}
        return schema.build(cls, t, error=ConfigError, name=name)


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


# what a user sets (config table and command line); the other fields are the protocol's own
TABLE_KEYS: tuple[str, ...] = tuple(k.key for k in schema.keys(ProtocolConfig))
