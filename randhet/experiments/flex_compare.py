"""``randhet flex-compare``: BioFlexNet's six variants trained identically and attacked.

Variants (poster, section 4): ANN, ANN+Flex, SNN (hybrid), SNN+Flex (hybrid), STBP SNN and
STBP SNN+Flex, i.e. ``model.mode`` in (ann, hybrid, snn) x (with, without Flex). The config's
layers are the "+Flex" network; the variant without Flex replaces every ``flex:C[:kK]...``
token by ``conv:C:kK`` (same channels, kernel, stride 1, padding K//2: the same output shape;
mask, pool, gate and eta options are dropped). Everything else (seed, data, training) is the
same. Each run goes through the robustness protocol (the config's [attack] table) on the
``float``/``torch`` targets only (no export: an ANN cannot deploy); for ANN runs there are no
decays, so the protocol's sigma = 0 twin and the transfer source are copies of the same network
and its draws are deterministic repeats. Activation sparsity (spiking variants) is
``1 - mean spike rate`` of all spiking layers on the test split, from the torch model.

``pgd_large_eps`` runs with the reference code's :data:`LARGE_EPS_STEPS` = 20 steps (step
``eps / 4``), not the protocol's ``steps`` (which the other iterative attacks use): it is run
as a separate protocol pass on the same samples and seed, written to
``<run>/pgd_large_eps/robustness.json`` (the other attacks: ``<run>/robustness.json``); its
flags are reported with a ``pgd_large_eps:`` prefix.

With several training seeds (``--seeds``) every variant is trained and attacked once per seed
(run folders ``<name>-seed<S>``, one seed after the other); a row holds the mean over seeds of
every number, the spread over seeds (``*_std_over_seeds``; 0 for one seed), the per-seed
values, and a flag is ok only when it is ok for every seed.

Each finished variant and seed writes ``variant.json`` in its run folder; a rerun with the
same ``--out`` reuses it, resumes an interrupted training from its checkpoint and an
interrupted attack from its finished units, and refuses a folder computed with another config.
A run with more seeds reuses the seeds an earlier run finished (``--seeds 0`` now,
``--seeds 0,1,2`` later).
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from randhet.attack.results import Curve, RobustnessResult
from randhet.attack.run import attack_run
from randhet.attack.settings import ProtocolConfig
from randhet.errors import UserError
from randhet.experiments.results import (
    CurvePoint,
    FlexCompareResult,
    SeedStat,
    VariantRow,
    VariantSeed,
)
from randhet.experiments.saved import jsonable, read_saved, train_resuming
from randhet.io import write_json, write_text
from randhet.layer_tokens import parse_layer_token
from randhet.models import EVAL_BATCH
from randhet.plots import plot_flex_compare
from randhet.runs import open_run
from randhet.train.trainer import evaluate

VARIANT_FILE = "variant.json"  # one variant and seed, done: reused by a rerun with the same inputs
LARGE_EPS_STEPS = 20  # BioFlexNet's released code: 20 PGD steps in its large-eps ("SPGD") sweep
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("ANN", "ann", False), ("ANN+Flex", "ann", True),
    ("SNN (hybrid)", "hybrid", False), ("SNN+Flex (hybrid)", "hybrid", True),
    ("STBP SNN", "snn", False), ("STBP SNN+Flex", "snn", True),
)


def without_flex(tokens: list[str]) -> list[str]:
    """The layer tokens with every Flex layer replaced by a plain conv of the same size."""
    out = []
    for token in tokens:
        kind, a = parse_layer_token(str(token))
        out.append(f"conv:{a['n']}:k{a['k']}" if kind == "flex" else str(token))
    return out


def variant_config(base: dict[str, Any], mode: str, flex: bool, name: str) -> dict[str, Any]:
    """A copy of ``base`` for one variant (mode, Flex or not), named ``name``."""
    cfg = copy.deepcopy(base)
    cfg["model"]["mode"] = mode
    if not flex:
        cfg["model"]["layers"] = without_flex(cfg["model"]["layers"])
    cfg["name"] = name
    return cfg


def _slug(label: str) -> str:
    return label.lower().replace("+", "-").replace(" ", "").replace("(", "-").replace(")", "")


@dataclass(frozen=True)
class CleanStats:
    """Clean test accuracy (torch model, fresh draws), samples, per-layer spike rates and
    activation sparsity (None for an ANN) on the test split."""

    accuracy: float
    samples: int
    rates: list[float]
    activation_sparsity: float | None


def _test_stats(run: Path, samples: int) -> CleanStats:
    """Clean test accuracy (torch model, fresh draws) and per-layer rates on the test split."""
    opened = open_run(run)
    model, data = opened.model(), opened.data()
    n = len(data.x_test) if samples <= 0 else min(samples, len(data.x_test))
    res = evaluate(model, data.x_test[:n], data.y_test[:n], EVAL_BATCH, torch.device("cpu"))
    hidden = [s.out_shape for s in model.spec.spiking_layers][:-1] or [(1,)]
    sizes = [float(torch.Size(s).numel()) for s in hidden]
    rates = res.spike_rate[: len(sizes)]
    rate = sum(r * w for r, w in zip(rates, sizes, strict=True)) / sum(sizes)
    spiking = opened.mode != "ann"
    return CleanStats(res.accuracy, n, list(res.spike_rate), 1.0 - rate if spiking else None)


@dataclass(frozen=True)
class VariantRobustness:
    """One run's robustness for the table: the torch-scored curves by name (``ensemble``, and
    ``pgd_large_eps`` when asked for) and every flag's verdict (the large-eps pass's prefixed)."""

    curves: dict[str, Curve]
    flags_ok: dict[str, bool]


def attack_variant(
    run: Path, protocol: ProtocolConfig, progress: bool = True
) -> VariantRobustness:
    """The protocol's ensemble on one run and, when ``pgd_large_eps`` is among the attacks,
    BioFlexNet's large-eps PGD alone (:data:`LARGE_EPS_STEPS` steps, cross-entropy on counts,
    the trained surrogate, no budget ladder) for comparison with that code's curves."""
    main = tuple(a for a in protocol.attacks if a != "pgd_large_eps")
    curves: dict[str, Curve] = {}
    flags_ok: dict[str, bool] = {}
    if main:
        rob = attack_run(run, dataclasses.replace(protocol, attacks=main), progress=progress)
        curves["ensemble"] = _torch_curve(rob)
        flags_ok |= {f.name: f.ok for f in rob.flags}
    if "pgd_large_eps" in protocol.attacks:
        large = dataclasses.replace(protocol, attacks=("pgd_large_eps",), steps=LARGE_EPS_STEPS,
                                    losses=("ce",), readouts=("counts",),
                                    surrogates=("trained",), doublings=0, max_doublings=0)
        rob = attack_run(run, large, run / "pgd_large_eps", progress=progress)
        curves["pgd_large_eps"] = _torch_curve(rob)
        flags_ok |= {f"pgd_large_eps:{f.name}": f.ok for f in rob.flags}
    return VariantRobustness(curves, flags_ok)


def _torch_curve(rob: RobustnessResult) -> Curve:
    curve = rob.curve("ensemble", "torch")
    assert curve is not None  # torch is always a target
    return curve


def aggregate_seeds(label: str, mode: str, flex: bool, layers: list[str],
                    per_seed: list[VariantSeed]) -> VariantRow:
    """One variant's row from its per-seed results."""
    first = per_seed[0]
    curves: dict[str, tuple[CurvePoint, ...]] = {}
    for attack, points in first.curves.items():
        out = []
        for i, p in enumerate(points):
            acc = [r.curves[attack][i].accuracy for r in per_seed]
            out.append(CurvePoint(p.eps, statistics.fmean(acc),
                                  statistics.fmean(r.curves[attack][i].std for r in per_seed),
                                  SeedStat.of(acc).std))
        curves[attack] = tuple(out)
    return VariantRow(
        variant=label, mode=mode, flex=flex, layers=tuple(layers), per_seed=tuple(per_seed),
        val_accuracy=SeedStat.of([r.val_accuracy for r in per_seed]),
        clean_accuracy=SeedStat.of([r.clean_accuracy for r in per_seed]),
        activation_sparsity=SeedStat.of([r.activation_sparsity for r in per_seed]),
        auc={a: SeedStat.of([r.auc[a] for r in per_seed]) for a in first.auc},
        curves=curves,
        flags_ok={k: all(r.flags_ok.get(k, False) for r in per_seed) for k in first.flags_ok},
    )


def variant_seed(run: Path, cfg: dict[str, Any], protocol: ProtocolConfig,
                 progress: bool) -> VariantSeed:
    """One variant and seed: the saved ``variant.json`` when it was computed with the same
    config and protocol, else trained (resuming an interrupted training), attacked (resuming
    the protocol's finished units) and saved."""
    path = run / VARIANT_FILE
    ident = jsonable({"config": cfg, "protocol": protocol.to_dict()})
    saved = read_saved(path, ident)
    if saved is not None:
        return VariantSeed.from_dict(saved)
    metrics = train_resuming(cfg, run, progress)
    rob = attack_variant(run, protocol, progress=progress)
    stats = _test_stats(run, 0)
    result = VariantSeed(
        seed=cfg["seed"], run=str(run), val_accuracy=metrics.best_val_accuracy,
        clean_accuracy=stats.accuracy, test_samples=stats.samples,
        activation_sparsity=stats.activation_sparsity,
        auc={name: c.auc for name, c in rob.curves.items()},
        curves={name: tuple(CurvePoint(p.eps, p.mean, p.std) for p in c.points)
                for name, c in rob.curves.items()},
        flags_ok=rob.flags_ok,
    )
    write_json(path, {**ident, **result.to_dict()})
    return result


def flex_compare(
    base_cfg: dict[str, Any], protocol: ProtocolConfig, out_dir: str | Path,
    progress: bool = True, seeds: tuple[int, ...] = (),
) -> FlexCompareResult:
    """Train and attack the six variants (once per seed; default: the config's seed); write
    flex_compare.json/.md/.png into ``out_dir``."""
    if not any(parse_layer_token(str(t))[0] == "flex" for t in base_cfg["model"]["layers"]):
        raise UserError("flex-compare needs a config with a flex layer in model.layers "
                        "(e.g. configs/digits-flex.toml)")
    targets = tuple(t for t in protocol.targets if t in ("float", "torch")) or ("torch",)
    protocol = dataclasses.replace(protocol, targets=targets)
    out = Path(out_dir)
    seeds = tuple(seeds) or (int(base_cfg["seed"]),)
    # seed-major, every folder named with its seed: an interrupted run leaves whole seeds
    # behind, and a later run with more --seeds reuses them
    done: dict[str, list[VariantSeed]] = {label: [] for label, _, _ in VARIANTS}
    for seed in seeds:
        for label, mode, flex in VARIANTS:
            name = f"{base_cfg['name']}-{_slug(label)}-seed{seed}"
            cfg = variant_config(base_cfg, mode, flex, name)
            cfg["seed"] = seed
            done[label].append(variant_seed(out / name, cfg, protocol, progress))
    rows = [aggregate_seeds(label, mode, flex,
                            variant_config(base_cfg, mode, flex, "x")["model"]["layers"],
                            done[label])
            for label, mode, flex in VARIANTS]
    result = FlexCompareResult(config=base_cfg["name"],
                               timesteps=base_cfg["encoding"]["timesteps"],
                               protocol=protocol.to_dict(), pgd_large_eps_steps=LARGE_EPS_STEPS,
                               seeds=tuple(seeds), variants=tuple(rows))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "flex_compare.json", result.to_dict())
    write_text(out / "flex_compare.md", markdown_table(result))
    plot_flex_compare(result, out / "flex_compare.png")
    return result


def markdown_table(result: FlexCompareResult) -> str:
    """One row per variant: clean accuracy, AUC per attack, activation sparsity (mean +- std
    over seeds when there are several)."""
    attacks = list(result.variants[0].auc)
    many = len(result.seeds) > 1

    def cell(s: SeedStat) -> str:
        if s.mean is None:
            return "n/a"
        return f"{s.mean:.3f} ± {s.std:.3f}" if many and s.std is not None else f"{s.mean:.3f}"

    head = ["variant", "mode", "clean acc", *[f"AUC {a}" for a in attacks], "sparsity"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result.variants:
        cells = [r.variant, r.mode, cell(r.clean_accuracy), *[cell(r.auc[a]) for a in attacks],
                 cell(r.activation_sparsity)]
        lines.append("| " + " | ".join(cells) + " |")
    eps = [p.eps for p in result.variants[0].curves[attacks[0]]]
    lines.append(
        f"\nclean acc: torch model on the test split; AUC: robust accuracy (torch model, mean "
        f"over {result.protocol['draws']} draws) vs eps {eps}, trapezoidal, normalised by the "
        "eps range; sparsity: 1 - mean spike rate of the spiking layers (ANN: n/a); "
        + (f"mean ± std over training seeds {list(result.seeds)}; " if many else "") +
        f"pgd_large_eps: {result.pgd_large_eps_steps} steps of eps / 4, "
        f"the other iterative attacks: {result.protocol['steps']} steps.")
    return "\n".join(lines) + "\n"
