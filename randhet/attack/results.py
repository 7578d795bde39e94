"""The robustness protocol's results: dataclasses from where they are computed to where
``robustness.json`` is written (:meth:`RobustnessResult.to_json`), nothing read back by key."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from randhet.attack.members import follows_gradient
from randhet.attack.settings import ProtocolConfig
from randhet.errors import UserError

ROBUSTNESS_FILE = "robustness.json"  # what one protocol run writes in the run folder


class UnitKey(NamedTuple):
    """One unit of work: the ensemble at one eps and budget level on one chunk of samples."""

    eps_index: int
    level: int
    chunk: int


@dataclass(frozen=True)
class Point:
    """Accuracy at one eps over R scoring draws: ``mean``/``std`` over the draws' accuracies,
    ``worst_case`` (correct on every draw), ``ci_low``/``ci_high`` the 95 % bootstrap interval
    of the mean over samples, and the rates of ties and silent outputs (wrong)."""

    eps: float
    mean: float
    std: float
    worst_case: float
    draws: int
    tie_rate: float
    silent_rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Curve:
    """One attack's (or the ensemble's) accuracy against eps on one scoring target."""

    name: str
    target: str
    points: tuple[Point, ...]
    auc: float

    def means(self) -> list[float]:
        return [p.mean for p in self.points]

    def at(self, eps: float) -> Point | None:
        return next((p for p in self.points if p.eps == eps), None)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Curve:
        """Read back from ``robustness.json`` (the keys :func:`dataclasses.asdict` writes)."""
        return Curve(d["name"], d["target"], tuple(Point(**p) for p in d["points"]), d["auc"])


@dataclass(frozen=True)
class Doubling:
    """One rung of the budget ladder at one eps: the ensemble's accuracy (torch, scoring
    draws) before and after doubling ``doubled``, the fall, and the paired one-sided test."""

    eps: float
    level: int
    doubled: str
    before: float
    after: float
    fall: float
    p_value: float
    significant: bool


@dataclass(frozen=True)
class Convergence:
    """The budget ladder at one eps: converged when the last doubling (after at least the
    configured number) lowered the ensemble by no significant amount."""

    eps: float
    converged: bool
    levels: int  # doublings run
    doublings: tuple[Doubling, ...]
    note: str


@dataclass(frozen=True)
class Headline:
    """The ensemble's robust accuracy at one eps on one target: per sample the worst input
    over every member and budget (chosen on selection draws), scored on independent draws;
    the lowest value over the budget levels."""

    eps: float
    target: str
    accuracy: float
    ci_low: float
    ci_high: float
    worst_case: float
    tie_rate: float
    silent_rate: float
    level: int
    converged: bool
    winners: dict[str, int]  # member (or "clean") -> samples whose chosen input it made


@dataclass(frozen=True)
class Flag:
    """One sanity check: ``ok``, the number it rests on, the rule, and what it means."""

    name: str
    ok: bool
    value: float | None
    rule: str
    detail: str


@dataclass(frozen=True)
class LavaSpotCheck:
    samples: int
    eps: float
    agreement: float
    lava_accuracy: float
    emulator_accuracy: float


@dataclass
class RobustnessResult:
    """Everything one protocol run measured; ``run_info`` is filled by the caller that knows
    the run (folder, seeds, versions, speed)."""

    threat_model: dict[str, str]
    config: ProtocolConfig
    samples: int
    members: tuple[str, ...]
    headline: tuple[Headline, ...]
    ensemble: tuple[Curve, ...]  # per target
    per_attack: tuple[Curve, ...]  # every member alone at its last budget, torch
    baselines: tuple[Curve, ...]  # noise, transfer (torch) and the sigma = 0 twin (itself)
    convergence: tuple[Convergence, ...]
    flags: tuple[Flag, ...]
    lava_spot_check: LavaSpotCheck | None
    seconds: float
    processes: int
    summary: tuple[str, ...] = ()  # the text summary (set with ``run_info`` by the caller)
    run_info: dict[str, Any] = field(default_factory=dict)

    def curve(self, name: str, target: str = "torch") -> Curve | None:
        """The ensemble's (``name`` = "ensemble"), a member's or a baseline's curve."""
        pool = (self.ensemble if name == "ensemble" else (*self.per_attack, *self.baselines))
        return next((c for c in pool if c.name == name and c.target == target), None)

    def headline_at(self, eps: float, target: str = "torch") -> Headline | None:
        return next((h for h in self.headline if h.eps == eps and h.target == target), None)

    @property
    def flags_ok(self) -> bool:
        return all(f.ok for f in self.flags)

    def to_json(self) -> dict[str, Any]:
        """The content of ``robustness.json``."""
        out = asdict(self)
        out["config"] = self.config.to_dict()
        info = out.pop("run_info")
        return {**out, **info}


def strongest_alone(per_attack: tuple[Curve, ...], eps: tuple[float, ...] | list[float],
                    gradient: bool) -> tuple[float | None, ...]:
    """Per eps, the lowest accuracy any one member of a kind reached alone (``gradient``:
    FGSM, PGD, APGD; else the gradient-free members, Square and NES), from the member curves
    (:attr:`RobustnessResult.per_attack`: last budget, torch scoring); None where no member of
    that kind ran."""
    kind = [c for c in per_attack if follows_gradient(c.name) == gradient]
    out: list[float | None] = []
    for e in eps:
        points = [p for c in kind if (p := c.at(e)) is not None]
        out.append(min(p.mean for p in points) if points else None)
    return tuple(out)


def read_per_attack(path: Path, config: ProtocolConfig) -> tuple[Curve, ...]:
    """The member curves of the ``robustness.json`` at ``path``; refused in one line when it
    was measured with other protocol settings than ``config``."""
    saved = json.loads(path.read_text())
    if not config.same_as_saved(saved["config"]):
        raise UserError(f"{path} was measured with other attack settings than this run's")
    return tuple(Curve.from_dict(c) for c in saved["per_attack"])
