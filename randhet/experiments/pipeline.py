"""``randhet run``: train, export, deploy and (when ``[attack]`` is enabled) attack, as the config
says, printing a summary; the whole pipeline in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from randhet import distributed
from randhet.attack.results import RobustnessResult
from randhet.attack.run import attack_run
from randhet.config import protocol_config
from randhet.deploy.pipeline import deploy
from randhet.deploy.reports import DeployReport
from randhet.errors import UserError
from randhet.export import export_run
from randhet.train.state import TrainMetrics
from randhet.train.trainer import train


def summary_table(train_metrics: TrainMetrics, report: DeployReport) -> str:
    """A short plain-text summary of a whole run."""
    d, a = report.decided, report.cost.activity
    e = a.energy

    def number(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    rows = [
        ("validation accuracy (torch, best epoch)", f"{train_metrics.best_val_accuracy:.4f}"),
        (f"test accuracy ({report.backend}, {report.samples} samples)", number(d.accuracy)),
        ("  ties / silent outputs (wrong)", f"{number(d.tie_rate)} / {number(d.silent_rate)}"),
        ("test accuracy (torch model, same draws)", number(report.reference_accuracy)),
        ("bit-exact fraction (deployed vs torch)", number(report.bit_exact_fraction)),
        ("activation sparsity", f"{a.activation_sparsity:.4f}"),
        ("synaptic ops / sample (effective)", f"{a.synops_effective:.0f}"),
        ("synaptic ops / sample (dense)", f"{a.synops_dense:d}"),
        (f"energy / sample ({report.profile}, estimate)", f"{e.joules_per_sample * 1e6:.3f} uJ"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append(f"decision rule: {d.decision_rule}")
    lines.append(f"energy basis: {e.basis}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PipelineResult:
    """A whole run: the training metrics (``metrics.json``), the deployment and the robustness
    protocol's result (None when ``attack.enabled`` is false)."""

    metrics: TrainMetrics
    deploy: DeployReport
    robustness: RobustnessResult | None


def run_pipeline(cfg: dict[str, Any], out: Path, progress: bool = True) -> PipelineResult:
    """Train into ``out``, export ``network.net``, deploy it and run the robustness protocol;
    print a summary."""
    world = distributed.world()
    if world.distributed and cfg["deploy"]["backend"] != "emulator":
        raise UserError("under torchrun, 'randhet run' deploys on the sharded emulator only: "
                        "add --set deploy.backend=emulator (or deploy on Lava afterwards with "
                        "one process)")
    metrics = train(cfg, out, progress=progress)
    print(f"trained: best validation accuracy {metrics.best_val_accuracy:.4f} "
          f"(epoch {metrics.best_epoch}) -> {out}")
    path = out / "network.net"
    if world.main:
        path = export_run(out)
    distributed.barrier()
    print(f"exported: {path}")
    d = cfg["deploy"]
    report = deploy(path, backend=d["backend"], samples=d["samples"], profile=d["profile"],
                    seed=d["seed"], progress=progress)
    print()
    print(summary_table(metrics, report))
    files = "config.toml, metrics.json, log.csv, network.net, deploy.json, training.png, deploy.png"
    result = None
    if cfg["attack"]["enabled"]:
        result = attack_run(out, protocol_config(cfg), progress=progress)
        print()
        print("\n".join(result.summary))
        files += ", robustness.json, robustness.png"
    print(f"\nresults: {out}/ ({files})")
    return PipelineResult(metrics, report, result)
