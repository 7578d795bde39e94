"""``randhet compare``'s results, typed from where each (cell, seed) is measured to where
``cell.json`` and ``compare.json`` are written (``to_dict``: the files' layout).

Accuracies are fractions of the test split; energy is joules per sample; eps is L-inf on
pixels in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SeedStat:
    """Mean, population std and count of one number over training seeds (None values left
    out; all None: mean and std None, n 0)."""

    mean: float | None
    std: float | None
    n: int

    @staticmethod
    def of(values: list[float | None]) -> SeedStat:
        a = np.asarray([v for v in values if v is not None], dtype=np.float64)
        if not len(a):
            return SeedStat(None, None, 0)
        return SeedStat(float(a.mean()), float(a.std()), len(a))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EpsStat:
    """A :class:`SeedStat` at one eps."""

    eps: float
    stat: SeedStat

    def to_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, **self.stat.to_dict()}


@dataclass(frozen=True)
class CellFit:
    """One deployment's resource fit on its profile, with its decay draws."""

    profile: str
    fits: bool
    cores: int | None  # where it fits, or profile-limited (None: neither)
    chips: int | None
    note: str | None  # "profile-limited", "does not fit" or None
    draw_samples: int
    redraw_writes_per_sample: float | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CellResult:
    """What one (cell, seed) measured: training, the deployment and the robustness protocol's
    ensemble on the scoring target, per eps."""

    val_accuracy: float
    epochs: int
    clean_accuracy: float
    deploy_samples: int
    activation_sparsity: float
    energy_joules_per_sample: float
    eps: tuple[float, ...]
    robust_accuracy: tuple[float, ...]
    robust_auc: float
    worst_case_accuracy: tuple[float, ...]
    converged: tuple[bool, ...]  # the budget ladder, per eps
    attacks: tuple[str, ...]  # the ensemble's members
    # per eps, the strongest single member of each kind alone (torch scoring, last budget)
    strongest_gradient: tuple[float | None, ...]
    strongest_gradient_free: tuple[float | None, ...]
    flags_ok: dict[str, bool]
    all_flags_ok: bool
    fit: CellFit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CellResult:
        """Read back from ``cell.json`` (the keys :meth:`to_dict` writes)."""
        return CellResult(
            val_accuracy=d["val_accuracy"], epochs=d["epochs"],
            clean_accuracy=d["clean_accuracy"], deploy_samples=d["deploy_samples"],
            activation_sparsity=d["activation_sparsity"],
            energy_joules_per_sample=d["energy_joules_per_sample"], eps=tuple(d["eps"]),
            robust_accuracy=tuple(d["robust_accuracy"]), robust_auc=d["robust_auc"],
            worst_case_accuracy=tuple(d["worst_case_accuracy"]),
            converged=tuple(d["converged"]), attacks=tuple(d["attacks"]),
            strongest_gradient=tuple(d["strongest_gradient"]),
            strongest_gradient_free=tuple(d["strongest_gradient_free"]),
            flags_ok=dict(d["flags_ok"]), all_flags_ok=d["all_flags_ok"],
            fit=CellFit(**d["fit"]))


@dataclass(frozen=True)
class CellRecord:
    """``cell.json``: what a (cell, seed) was computed with (checked before it is reused),
    its run folder and its result."""

    seed: int
    overrides: dict[str, Any]
    config: dict[str, Any]
    protocol: dict[str, Any]
    run: str
    result: CellResult

    def ident(self) -> dict[str, Any]:
        return {"seed": self.seed, "overrides": self.overrides, "config": self.config,
                "protocol": self.protocol}

    def to_dict(self) -> dict[str, Any]:
        return {**self.ident(), "run": self.run, **self.result.to_dict()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CellRecord:
        return CellRecord(d["seed"], d["overrides"], d["config"], d["protocol"], d["run"],
                          CellResult.from_dict(d))


@dataclass(frozen=True)
class RowFit:
    """A row's resource fit over its seeds."""

    profile: str
    fits: bool  # on every seed
    fits_per_seed: tuple[bool, ...]
    cores: SeedStat
    chips: SeedStat
    notes: tuple[str, ...]
    redraw_writes_per_sample: SeedStat

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "fits": self.fits,
                "fits_per_seed": list(self.fits_per_seed), "cores": self.cores.to_dict(),
                "chips": self.chips.to_dict(), "notes": list(self.notes),
                "redraw_writes_per_sample": self.redraw_writes_per_sample.to_dict()}


@dataclass(frozen=True)
class Row:
    """One grid cell over the seeds: mean/std/n, and deltas against its sigma = 0 control
    paired by seed."""

    cell: dict[str, Any]  # grid key -> value
    overrides: dict[str, Any]
    control: int  # the control row's index
    training: str  # the run folder's name under the compare folder
    shared_training: bool
    per_seed: tuple[CellRecord, ...]
    val_accuracy: SeedStat
    clean_accuracy: SeedStat
    clean_accuracy_delta: SeedStat
    robust_accuracy: tuple[EpsStat, ...]
    robust_accuracy_delta: tuple[EpsStat, ...]
    robust_auc: SeedStat
    robust_auc_delta: SeedStat
    worst_case_accuracy: tuple[EpsStat, ...]
    strongest_gradient: tuple[EpsStat, ...]
    strongest_gradient_free: tuple[EpsStat, ...]
    strongest_gradient_free_delta: tuple[EpsStat, ...]
    activation_sparsity: SeedStat
    energy_joules_per_sample: SeedStat
    fit: RowFit
    flags_ok: dict[str, bool]  # on every seed
    all_flags_ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell, "overrides": self.overrides, "control": self.control,
            "training": self.training, "shared_training": self.shared_training,
            "runs": [r.run for r in self.per_seed],
            "val_accuracy": self.val_accuracy.to_dict(),
            "clean_accuracy": self.clean_accuracy.to_dict(),
            "clean_accuracy_delta": self.clean_accuracy_delta.to_dict(),
            "robust_accuracy": [p.to_dict() for p in self.robust_accuracy],
            "robust_accuracy_delta": [p.to_dict() for p in self.robust_accuracy_delta],
            "robust_auc": self.robust_auc.to_dict(),
            "robust_auc_delta": self.robust_auc_delta.to_dict(),
            "worst_case_accuracy": [p.to_dict() for p in self.worst_case_accuracy],
            "strongest_gradient": [p.to_dict() for p in self.strongest_gradient],
            "strongest_gradient_free": [p.to_dict() for p in self.strongest_gradient_free],
            "strongest_gradient_free_delta": [p.to_dict()
                                              for p in self.strongest_gradient_free_delta],
            "activation_sparsity": self.activation_sparsity.to_dict(),
            "energy_joules_per_sample": self.energy_joules_per_sample.to_dict(),
            "fit": self.fit.to_dict(),
            "flags_ok": dict(self.flags_ok),
            "all_flags_ok": self.all_flags_ok,
            "per_seed": [{k: v for k, v in r.to_dict().items() if k not in ("config", "protocol")}
                         for r in self.per_seed],
        }


@dataclass(frozen=True)
class CompareResult:
    """``compare.json``: every row, the grid and protocol they ran, and which (training, seed)
    folders this call computed (the others were reused)."""

    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    grid_note: str | None
    seeds: tuple[int, ...]
    protocol: dict[str, Any]
    target: str  # where robust accuracy is scored
    fit_profile: str
    definitions: dict[str, str]
    rows: tuple[Row, ...]
    trainings: int
    computed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"grid": [[k, list(v)] for k, v in self.grid], "grid_note": self.grid_note,
                "seeds": list(self.seeds), "protocol": self.protocol, "target": self.target,
                "fit_profile": self.fit_profile, "definitions": dict(self.definitions),
                "rows": [r.to_dict() for r in self.rows], "trainings": self.trainings,
                "computed": list(self.computed)}


# --- flex-compare --------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    """Accuracy at one eps: the mean over scoring draws and its std over draws; over several
    training seeds, the mean of those and the std of the means over seeds."""

    eps: float
    accuracy: float
    std: float
    std_over_seeds: float | None = None  # None: one seed's point

    def to_dict(self) -> dict[str, Any]:
        out = {"eps": self.eps, "accuracy": self.accuracy, "std": self.std}
        return out if self.std_over_seeds is None else {**out,
                                                        "std_over_seeds": self.std_over_seeds}


@dataclass(frozen=True)
class VariantSeed:
    """One BioFlexNet variant trained with one seed: clean accuracy (torch model, test split),
    sparsity (None for an ANN), and per curve (``ensemble``, ``pgd_large_eps``) its AUC and
    points (torch target)."""

    seed: int
    run: str
    val_accuracy: float
    clean_accuracy: float
    test_samples: int
    activation_sparsity: float | None
    auc: dict[str, float]
    curves: dict[str, tuple[CurvePoint, ...]]
    flags_ok: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "run": self.run, "val_accuracy": self.val_accuracy,
                "clean_accuracy": self.clean_accuracy, "test_samples": self.test_samples,
                "activation_sparsity": self.activation_sparsity, "auc": dict(self.auc),
                "curves": {k: [p.to_dict() for p in v] for k, v in self.curves.items()},
                "flags_ok": dict(self.flags_ok)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> VariantSeed:
        """Read back from ``variant.json`` (the keys :meth:`to_dict` writes)."""
        return VariantSeed(
            seed=d["seed"], run=d["run"], val_accuracy=d["val_accuracy"],
            clean_accuracy=d["clean_accuracy"], test_samples=d["test_samples"],
            activation_sparsity=d["activation_sparsity"], auc=dict(d["auc"]),
            curves={k: tuple(CurvePoint(**p) for p in v) for k, v in d["curves"].items()},
            flags_ok=dict(d["flags_ok"]))


@dataclass(frozen=True)
class VariantRow:
    """One variant over its seeds: means, spreads over seeds (0 for one seed; None where the
    number does not exist, e.g. an ANN's sparsity) and the per-seed values."""

    variant: str
    mode: str
    flex: bool
    layers: tuple[str, ...]
    per_seed: tuple[VariantSeed, ...]
    val_accuracy: SeedStat
    clean_accuracy: SeedStat
    activation_sparsity: SeedStat
    auc: dict[str, SeedStat]
    curves: dict[str, tuple[CurvePoint, ...]]
    flags_ok: dict[str, bool]  # ok on every seed

    def to_dict(self) -> dict[str, Any]:
        first = self.per_seed[0]
        out: dict[str, Any] = {
            "variant": self.variant, "mode": self.mode, "flex": self.flex,
            "layers": list(self.layers), "seeds": [r.seed for r in self.per_seed],
            "runs": [r.run for r in self.per_seed], "run": first.run,
            "test_samples": first.test_samples}
        for key, stat in (("val_accuracy", self.val_accuracy),
                          ("clean_accuracy", self.clean_accuracy),
                          ("activation_sparsity", self.activation_sparsity)):
            out[key], out[f"{key}_std_over_seeds"] = stat.mean, stat.std
        out["auc"] = {k: s.mean for k, s in self.auc.items()}
        out["auc_std_over_seeds"] = {k: s.std for k, s in self.auc.items()}
        out["curves"] = {k: [p.to_dict() for p in v] for k, v in self.curves.items()}
        out["flags_ok"] = dict(self.flags_ok)
        out["per_seed"] = [{k: v for k, v in r.to_dict().items() if k in (
            "seed", "val_accuracy", "clean_accuracy", "activation_sparsity", "auc")}
            for r in self.per_seed]
        return out


@dataclass(frozen=True)
class FlexCompareResult:
    """``flex_compare.json``: the six variants, the protocol they ran and the seeds."""

    config: str
    timesteps: int
    protocol: dict[str, Any]
    pgd_large_eps_steps: int
    seeds: tuple[int, ...]
    variants: tuple[VariantRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "timesteps": self.timesteps, "protocol": self.protocol,
                "pgd_large_eps_steps": self.pgd_large_eps_steps, "seeds": list(self.seeds),
                "variants": [v.to_dict() for v in self.variants]}
