"""``randhet compare``: the same protocol on identically trained networks over a grid of config
values, each RandHet cell beside its sigma = 0 control, over several training seeds, in one
table and one plot.

The grid is an ordered list of (dotted config key, values); its cells are their cartesian
product (the last key varies fastest). ``neuron.sigma`` is always a grid key (when the grid
lacks it, ``[0, the config's sigma]`` is appended), and every cell with sigma > 0 is read
against its control: the cell with sigma = 0 and every other key equal. Granularity means
nothing at sigma = 0 (no draw), so sigma = 0 cells that differ in ``neuron.granularity``
alone are one network: it is trained once and shared.

For every (cell, seed): train, export, deploy on the emulator (clean accuracy, sparsity,
dynamic energy per sample; its resource fit on the config's deploy profile with the deployed
draws: cores, chips, decay-profile redraw traffic), then the robustness protocol. Each (cell,
seed) writes ``cell.json`` in its own run folder when done; a rerun with the same ``out_dir``
reuses it (and an interrupted training resumes from its checkpoint), and refuses a folder
computed with a different config. The table reports mean and std over seeds, whichever way
the numbers fall.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from randhet.attack.results import ROBUSTNESS_FILE, Curve, read_per_attack, strongest_alone
from randhet.attack.run import attack_run
from randhet.attack.settings import ProtocolConfig
from randhet.config import with_overrides
from randhet.deploy.fit import FitReport
from randhet.deploy.pipeline import deploy
from randhet.errors import UserError
from randhet.experiments.results import (
    CellFit,
    CellRecord,
    CellResult,
    CompareResult,
    EpsStat,
    Row,
    RowFit,
    SeedStat,
)
from randhet.experiments.saved import jsonable, read_saved, train_resuming
from randhet.export import export_run
from randhet.io import write_json, write_text
from randhet.plots import plot_compare

SIGMA = "neuron.sigma"
GRANULARITY = "neuron.granularity"
PROFILES = "neuron.profiles"  # decay profiles per layer of granularity "profile"
CELL_FILE = "cell.json"

Grid = list[tuple[str, list[Any]]]


def parse_value(text: str) -> Any:
    """A grid value from the command line: int, float, bool (true/false), else the string."""
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    return t


def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """``key=v1,v2`` -> (key, parsed values); UserError when malformed."""
    key, sep, values = text.partition("=")
    items = [v for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not items:
        raise UserError(f"--grid {text!r}: expected section.key=value1,value2,...")
    return key.strip(), [parse_value(v) for v in items]


def cell_overrides(cell: dict[str, Any]) -> dict[str, Any]:
    """The config values one cell sets: its grid values, with ``neuron.granularity =
    "profile:K"`` meaning ``neuron.granularity = "profile"`` and ``neuron.profiles = K``."""
    out: dict[str, Any] = {}
    for key, value in cell.items():
        m = re.fullmatch(r"profile:(\d+)", value) if isinstance(value, str) else None
        if key == GRANULARITY and m:
            out[GRANULARITY] = "profile"
            out[PROFILES] = int(m.group(1))
        else:
            out[key] = value
    return out


def control_of(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell's sigma = 0 twin: every other key equal."""
    return {**cell, SIGMA: 0.0}


def training_key(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that make the trained network: at sigma = 0 granularity (and its profile
    count) change nothing, so they are dropped; the config's own values stand."""
    if float(overrides.get(SIGMA, 1)) == 0:
        return {k: v for k, v in overrides.items() if k not in (GRANULARITY, PROFILES)}
    return dict(overrides)


def full_grid(base_cfg: dict[str, Any], grid: Grid) -> tuple[Grid, str | None]:
    """The grid with ``neuron.sigma`` in it (appended as [0, config sigma] when missing) and
    the note saying so (None when the grid had it); UserError for a malformed grid."""
    grid = [(k, [float(v) if k == SIGMA and _number(v) else v for v in values])
            for k, values in grid]  # 0 and 0.0 are one sigma
    keys = [k for k, _ in grid]
    if {"seed", "name"} & set(keys):
        raise UserError("'seed' and 'name' are not grid keys (training seeds: --seeds)")
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise UserError(f"grid key(s) given twice: {', '.join(dup)}")
    for key, values in grid:
        if not values:
            raise UserError(f"grid key {key!r} has no values")
        if len({json.dumps(v) for v in values}) != len(values):
            raise UserError(f"grid key {key!r} repeats a value: {values}")
    note = None
    if SIGMA not in keys:
        sigma = float(base_cfg["neuron"]["sigma"])
        added = [0.0, sigma] if sigma != 0 else [0.0]
        grid.append((SIGMA, added))
        note = (f"{SIGMA} is not a grid key: added {SIGMA}={','.join(f'{s:g}' for s in added)} "
                "(the sigma = 0 control beside the config's sigma)")
    sigmas = dict(grid)[SIGMA]
    if not all(_number(s) for s in sigmas):
        raise UserError(f"{SIGMA} values must be numbers; got {sigmas}")
    if not any(s == 0 for s in sigmas):
        raise UserError(f"{SIGMA} values {sigmas} need 0: every RandHet cell is read against "
                        "its sigma = 0 control")
    return grid, note


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def expand(grid: Grid) -> list[dict[str, Any]]:
    """The grid's cells, {key: value} in grid order, the last key varying fastest."""
    keys = [k for k, _ in grid]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(v for _, v in grid))]


def _slug(overrides: dict[str, Any]) -> str:
    """A folder name for a training: its overrides, filesystem-safe."""
    text = "_".join(f"{k}-{v}" for k, v in overrides.items())
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", text) or "base"


@dataclass
class Cell:
    """One grid cell: its grid values, the config values it sets, its validated config, its
    control row and the training (folder) it runs on, shared by equal trainings."""

    values: dict[str, Any]
    overrides: dict[str, Any]
    cfg: dict[str, Any]
    training: str  # folder name under out_dir
    control: int = -1
    shared: bool = False  # the training also serves another cell (a sigma = 0 control)
    per_seed: list[CellRecord] = field(default_factory=list)

    @property
    def sigma(self) -> float:
        return float(self.cfg["neuron"]["sigma"])

    def seed_config(self, seed: int) -> dict[str, Any]:
        """The config one seed of this cell trains with."""
        return {**self.cfg, "seed": seed, "name": f"{self.cfg['name']}-{self.training}-seed{seed}"}

    def run_dir(self, out: Path, seed: int) -> Path:
        """The run folder of one seed of this cell's training."""
        return out / self.training / f"seed{seed}"


def plan(base_cfg: dict[str, Any], grid: Grid) -> tuple[list[Cell], Grid, str | None]:
    """Every cell resolved and validated before anything is trained (a bad key or value is a
    one-line UserError naming it), with its control and its (possibly shared) training."""
    grid, note = full_grid(base_cfg, grid)
    cells: list[Cell] = []
    names: dict[str, str] = {}  # training key (JSON) -> folder name
    for values in expand(grid):
        overrides = cell_overrides(values)
        key = training_key(overrides)
        with_overrides(base_cfg, overrides, source="grid")  # every value, even unused ones
        cfg = with_overrides(base_cfg, key, source="grid")
        ident = json.dumps(key, sort_keys=True)
        if ident not in names:  # a name no other training has (sanitizing may merge two)
            taken = set(names.values())
            name = base = _slug(key)
            suffix = 1
            while name in taken:
                suffix += 1
                name = f"{base}~{suffix}"
            names[ident] = name
        cells.append(Cell(values, overrides, cfg, names[ident]))
    index = {json.dumps(c.values, sort_keys=True): i for i, c in enumerate(cells)}
    for c in cells:
        c.control = index[json.dumps(control_of(c.values), sort_keys=True)]
        c.shared = sum(o.training == c.training for o in cells) > 1
    return cells, grid, note


def score_target(protocol: ProtocolConfig) -> str:
    """Where the table's robust accuracy is scored: the deployed network (emulator) when the
    protocol scores on it, else the torch model."""
    return "emulator" if "emulator" in protocol.targets else "torch"


def _fit(report: FitReport, samples: int) -> CellFit:
    """The deployment's own fit (its profile, its ``samples`` decay draws): fits, cores, chips
    (when it does not fit: the decay-profile-limited placement, if that one fits), redraw
    writes."""
    cores, chips, note = report.total_cores, report.chips, None
    if not report.fits:
        cut = report.profile_limited
        cores, chips = (cut["cores"], cut["chips"]) if cut else (None, None)
        note = "profile-limited" if cut else "does not fit"
    redraw = report.redraw()
    return CellFit(profile=report.profile, fits=report.fits, cores=cores, chips=chips,
                   note=note, draw_samples=samples,
                   redraw_writes_per_sample=(redraw["register_writes_per_sample"] if redraw
                                             else None),
                   summary=report.summary())


def measure_cell(run: Path, cfg: dict[str, Any], protocol: ProtocolConfig,
                 progress: bool) -> CellResult:
    """Train (resuming a checkpoint left in ``run``), export, deploy, fit and attack one
    (cell, seed); the numbers the table reads."""
    metrics = train_resuming(cfg, run, progress)
    export_run(run)
    dep = deploy(run / "network.net", backend="emulator", samples=0,
                 profile=cfg["deploy"]["profile"], seed=cfg["deploy"]["seed"], progress=False)
    rob = attack_run(run, protocol, progress=progress)
    target = score_target(protocol)
    ensemble = rob.curve("ensemble", target)
    assert ensemble is not None  # the protocol scores every target it was given
    assert dep.accuracy is not None  # a trained run's test split has labels
    return CellResult(
        val_accuracy=metrics.best_val_accuracy,
        epochs=metrics.epochs,
        clean_accuracy=dep.accuracy,
        deploy_samples=dep.samples,
        activation_sparsity=dep.cost.activity.activation_sparsity,
        energy_joules_per_sample=dep.cost.activity.energy.joules_per_sample,
        eps=tuple(protocol.eps),
        robust_accuracy=tuple(ensemble.means()),
        robust_auc=ensemble.auc,
        worst_case_accuracy=tuple(p.worst_case for p in ensemble.points),
        converged=tuple(c.converged for c in rob.convergence),
        attacks=tuple(rob.members),
        **_by_kind(rob.per_attack, protocol.eps),
        flags_ok={f.name: f.ok for f in rob.flags},
        all_flags_ok=rob.flags_ok,
        fit=_fit(dep.cost.fit, dep.samples),
    )


def run_cell(run: Path, cfg: dict[str, Any], overrides: dict[str, Any],
             protocol: ProtocolConfig, seed: int, progress: bool) -> tuple[CellRecord, bool]:
    """One (training, seed): the saved ``cell.json`` when it matches, else computed and saved
    (atomically). Returns (record, computed now)."""
    path = run / CELL_FILE
    ident = jsonable({"seed": seed, "overrides": overrides, "config": cfg,
                      "protocol": protocol.to_dict()})
    saved = read_saved(path, ident)
    if saved is not None:
        if "strongest_gradient" not in saved:  # a cell.json from before these columns
            curves = read_per_attack(run / ROBUSTNESS_FILE, protocol)
            saved = {**saved, **{k: list(v) for k, v in _by_kind(curves, protocol.eps).items()}}
            write_json(path, saved)
        return CellRecord.from_dict(saved), False
    record = CellRecord(ident["seed"], ident["overrides"], ident["config"], ident["protocol"],
                        str(run), measure_cell(run, cfg, protocol, progress))
    write_json(path, record.to_dict())
    return record, True


def _by_kind(curves: tuple[Curve, ...], eps: tuple[float, ...]
             ) -> dict[str, tuple[float | None, ...]]:
    """:class:`CellResult`'s per-kind fields from the protocol's member curves."""
    return {"strongest_gradient": strongest_alone(curves, eps, True),
            "strongest_gradient_free": strongest_alone(curves, eps, False)}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _row(c: Cell, control: Cell, eps: list[float]) -> Row:
    """One cell's row: mean/std/n over seeds, deltas against its control paired by seed."""
    ps = [r.result for r in c.per_seed]
    base = [r.result for r in control.per_seed]

    def delta(get: Callable[[CellResult], float | None]) -> SeedStat:
        return SeedStat.of([_minus(get(r), get(k)) for r, k in zip(ps, base, strict=True)])

    def per_eps(get: Callable[[CellResult, int], float | None], paired: bool = False
                ) -> tuple[EpsStat, ...]:
        return tuple(EpsStat(e, delta(lambda r, i=i: get(r, i)) if paired
                             else SeedStat.of([get(r, i) for r in ps]))
                     for i, e in enumerate(eps))

    fit = [r.fit for r in ps]
    return Row(
        cell=c.values,
        overrides=c.overrides,
        control=c.control,
        training=c.training,
        shared_training=c.shared,
        per_seed=tuple(c.per_seed),
        val_accuracy=SeedStat.of([r.val_accuracy for r in ps]),
        clean_accuracy=SeedStat.of([r.clean_accuracy for r in ps]),
        clean_accuracy_delta=delta(lambda r: r.clean_accuracy),
        robust_accuracy=per_eps(lambda r, i: r.robust_accuracy[i]),
        robust_accuracy_delta=per_eps(lambda r, i: r.robust_accuracy[i], paired=True),
        robust_auc=SeedStat.of([r.robust_auc for r in ps]),
        robust_auc_delta=delta(lambda r: r.robust_auc),
        worst_case_accuracy=per_eps(lambda r, i: r.worst_case_accuracy[i]),
        strongest_gradient=per_eps(lambda r, i: r.strongest_gradient[i]),
        strongest_gradient_free=per_eps(lambda r, i: r.strongest_gradient_free[i]),
        strongest_gradient_free_delta=per_eps(lambda r, i: r.strongest_gradient_free[i],
                                              paired=True),
        activation_sparsity=SeedStat.of([r.activation_sparsity for r in ps]),
        energy_joules_per_sample=SeedStat.of([r.energy_joules_per_sample for r in ps]),
        fit=RowFit(profile=fit[0].profile, fits=all(f.fits for f in fit),
                   fits_per_seed=tuple(f.fits for f in fit),
                   cores=SeedStat.of([f.cores for f in fit]),
                   chips=SeedStat.of([f.chips for f in fit]),
                   notes=tuple(sorted({f.note for f in fit if f.note})),
                   redraw_writes_per_sample=SeedStat.of(
                       [f.redraw_writes_per_sample for f in fit])),
        flags_ok={k: all(r.flags_ok.get(k, False) for r in ps) for k in ps[0].flags_ok},
        all_flags_ok=all(r.all_flags_ok for r in ps),
    )


DEFINITIONS = {
    "clean_accuracy": "deployed network on the emulator (bit-exact with Lava), the whole test "
                      "split, one fresh decay draw per sample (deploy.seed)",
    "delta": "per training seed, this row minus its sigma = 0 control (same seed, every other "
             "grid key equal), then mean ± std over seeds",
    "robust_accuracy": "the protocol's ensemble (per sample the worst input over every attack, "
                       "loss, readout, surrogate and budget, chosen on selection draws), mean "
                       "over the independent scoring draws, on the target named in 'target'",
    "robust_auc": "area under the ensemble's accuracy over the protocol's eps (trapezoid), "
                  "normalised by the eps range",
    "worst_case_accuracy": "per eps, the ensemble's inputs classified correctly on every "
                           "scoring draw",
    "strongest_gradient": "per eps, the lowest accuracy one gradient member (FGSM, PGD, APGD "
                          "with one loss, readout and surrogate) reached alone at its last "
                          "budget, torch scoring, mean over scoring draws",
    "strongest_gradient_free": "the same for the gradient-free members (Square, NES); where "
                               "it is below strongest_gradient the gradients are masked and "
                               "the ensemble rests on their query budget",
    "activation_sparsity": "1 - mean spike rate of the deployed network's layers (emulator)",
    "energy_joules_per_sample": "dynamic energy per sample, the deploy profile's lower-bound "
                                "proxy estimate",
    "fit": "the deployment's resource fit, on its profile (deploy.profile) with its decay "
           "draws: cores and chips where it fits; where the decay profiles per core are over "
           "the limit, the cores and chips once every core meets it ('profile-limited'); "
           "redraw writes: "
           "decay-register writes per sample to redraw the profiles (0: no redraw)",
}


def compare(
    base_cfg: dict[str, Any],
    grid: Grid,
    seeds: list[int],
    protocol: ProtocolConfig,
    out_dir: str | Path,
    progress: bool = True,
) -> CompareResult:
    """Train, deploy, fit and attack every (grid cell, seed); write compare.json/.md/.png.

    ``grid``: [(dotted config key, values)], e.g. ``[("neuron.granularity", ["neuron",
    "channel"]), ("neuron.sigma", [0, 1])]``. Returns what compare.json holds, typed; its
    ``computed`` lists the (training, seed) folders computed in this call (the others were
    reused from ``out_dir``)."""
    if not seeds:
        raise UserError("compare needs at least one training seed")
    protocol.check()
    cells, grid, note = plan(base_cfg, grid)
    if note:
        print(f"compare: {note}")
    out = Path(out_dir)
    trainings = list(dict.fromkeys(c.training for c in cells))
    results: dict[tuple[str, int], CellRecord] = {}
    computed = []
    # seed-major: an interrupted grid leaves whole seeds behind, readable with fewer --seeds
    work = [(t, s) for s in seeds for t in trainings]
    for training, seed in tqdm(work, desc="compare", unit="run",
                               disable=None if progress else True):
        cell = next(c for c in cells if c.training == training)
        run = cell.run_dir(out, seed)
        results[training, seed], fresh = run_cell(run, cell.seed_config(seed),
                                                  training_key(cell.overrides), protocol, seed,
                                                  progress)
        if fresh:
            computed.append(str(run))
    for c in cells:
        c.per_seed = [results[c.training, s] for s in seeds]
    eps = list(protocol.eps)
    result = CompareResult(
        grid=tuple((k, tuple(v)) for k, v in grid),
        grid_note=note,
        seeds=tuple(seeds),
        protocol=protocol.to_dict(),
        target=score_target(protocol),
        fit_profile=base_cfg["deploy"]["profile"],
        definitions=DEFINITIONS,
        rows=tuple(_row(c, cells[c.control], eps) for c in cells),
        trainings=len(trainings),
        computed=tuple(computed),
    )
    write_json(out / "compare.json", result.to_dict())
    write_text(out / "compare.md", markdown_table(result))
    plot_compare(result, out / "compare.png")
    return result


def _pm(s: SeedStat, scale: float = 1.0, digits: int = 3) -> str:
    if s.mean is None or s.std is None:
        return "–"
    return f"{s.mean * scale:.{digits}f} ± {s.std * scale:.{digits}f}"


def _signed(s: SeedStat) -> str:
    return "–" if s.mean is None or s.std is None else f"{s.mean:+.3f} ± {s.std:.3f}"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _shown_rows(result: CompareResult) -> list[tuple[int, Row]]:
    """The rows a table shows, with their indices: a sigma = 0 control shared by every
    granularity (one network) once."""
    shown: set[str] = set()
    out = []
    for index, row in enumerate(result.rows):
        if row.shared_training and row.training in shown:
            continue  # the same network as a control row above
        shown.add(row.training)
        out.append((index, row))
    return out


def _key_cells(row: Row, keys: list[str], dagger: bool) -> list[str]:
    """A row's grid values; a shared control's granularity reads "any" (``dagger``: its sigma
    marked †)."""
    shared = row.shared_training
    mark = "†" if shared and dagger else ""
    return [("any" if shared and k == GRANULARITY else _value(row.cell[k]))
            + (mark if k == SIGMA else "") for k in keys]


def _kind_table(result: CompareResult, keys: list[str], positive: list[int]) -> list[str]:
    """Each row's strongest gradient member and strongest gradient-free member alone, per eps:
    where the gradient-free one is the stronger, the gradients are masked."""
    eps = [p.eps for p in result.rows[0].robust_accuracy]
    head = [k.split(".")[-1] for k in keys]
    for i in positive:
        head += [f"gradient alone @ {eps[i]:.3g}", f"gradient-free alone @ {eps[i]:.3g} (Δ)"]
    lines = ["Each kind of attack alone (torch scoring; the strongest member of the kind):",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in _shown_rows(result):
        cells = _key_cells(row, keys, dagger=False)
        for i in positive:
            d = "" if row.control == index else (
                f" ({_signed(row.strongest_gradient_free_delta[i].stat)})")
            cells += [_pm(row.strongest_gradient[i].stat),
                      _pm(row.strongest_gradient_free[i].stat) + d]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_table(result: CompareResult) -> str:
    """One table, a row per cell: mean ± std over seeds, deltas against the sigma = 0 control."""
    keys = [k for k, _ in result.grid]
    eps = [p.eps for p in result.rows[0].robust_accuracy]
    positive = [i for i, e in enumerate(eps) if e > 0]
    last = len(eps) - 1
    head = [k.split(".")[-1] for k in keys]
    head += ["clean acc", "Δ clean"]
    head += [f"robust @ {eps[i]:.3g} (Δ)" for i in positive]
    head += ["robust AUC (Δ)", f"worst @ {eps[last]:.3g}", "sparsity",
             f"{result.fit_profile} cores / chips", "redraw writes/sample",
             "energy/sample (uJ)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in _shown_rows(result):
        control = row.control == index
        cells = _key_cells(row, keys, dagger=True)
        cells += [_pm(row.clean_accuracy),
                  "control" if control else _signed(row.clean_accuracy_delta)]
        for i in positive:
            d = "" if control else f" ({_signed(row.robust_accuracy_delta[i].stat)})"
            cells.append(_pm(row.robust_accuracy[i].stat) + d)
        d = "" if control else f" ({_signed(row.robust_auc_delta)})"
        cells.append(_pm(row.robust_auc) + d)
        cells.append(_pm(row.worst_case_accuracy[last].stat))
        cells.append(_pm(row.activation_sparsity))
        fit = row.fit
        cores = "–" if fit.cores.mean is None or fit.chips.mean is None else (
            f"{fit.cores.mean:.0f} / {fit.chips.mean:.0f}")
        notes = ", ".join(fit.notes)
        cells.append(cores + ("" if fit.fits else f" (does not fit; {notes or 'no cut'})"))
        cells.append(_pm(fit.redraw_writes_per_sample, digits=0))
        cells.append(_pm(row.energy_joules_per_sample, 1e6, 4))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_kind_table(result, keys, positive)]
    n = len(result.seeds)
    target = result.target
    notes = [
        "",
        f"Mean ± std over {n} training seed(s) ({', '.join(map(str, result.seeds))}); every "
        "cell trained identically. Columns:",
        "- grid keys: the cell's config values (profile:K = granularity profile with K decay "
        "profiles); † marks a sigma = 0 control shared by every granularity (one network, "
        "trained once and shared, shown once).",
        "- clean acc: deployed network on the emulator (bit-exact with Lava), whole test split, "
        "a fresh decay draw per sample.",
        "- Δ: this row minus its sigma = 0 control (same seed, every other key equal), mean ± "
        "std over seeds; 'control' marks the control rows.",
        f"- robust @ eps: the protocol's ensemble (per sample the worst input over every "
        "attack, loss, readout, surrogate and budget, chosen on selection draws) scored on "
        f"the {target} target, mean over independent scoring draws; robust AUC: area under "
        "it over eps (trapezoid), normalised by the eps range.",
        f"- worst @ {eps[last]:.3g}: the ensemble's inputs classified correctly on every "
        f"scoring draw at the largest eps, {target} target.",
        "- sparsity: 1 - mean spike rate of the deployed network (emulator).",
        f"- {result.fit_profile} cores / chips: resource fit on the {result.fit_profile} "
        "profile with the deployed draws; when a core needs more decay profiles than the chip "
        "has, the cores and chips once every core meets the limit (profile-limited).",
        "- redraw writes/sample: decay-register writes per sample to redraw the profiles on "
        f"{result.fit_profile} (0: no redraw).",
        "- energy/sample: dynamic energy, the deploy profile's lower-bound proxy estimate.",
        "- gradient alone / gradient-free alone: per eps, the lowest accuracy one member of "
        "the kind reached alone (gradient: FGSM, PGD, APGD with one loss, readout and "
        "surrogate; gradient-free: Square, NES), at its last budget, torch scoring. Where "
        "gradient-free is the lower, the gradients are masked: the ensemble then rests on "
        "the gradient-free query budget, and a robust gain that no gradient-free member "
        "alone shows is a gain against the gradient attacks only.",
    ]
    if result.grid_note:
        notes.append(f"- note: {result.grid_note}.")
    return "\n".join(lines + notes) + "\n"
