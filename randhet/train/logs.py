"""The training log: one row per epoch in ``log.csv``/``log.jsonl``, and TensorBoard scalars."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from randhet.io import write_text
from randhet.train.state import EvalResult, TrainState


def log_row(
    state: TrainState, epoch: int, train: dict[str, float], val: EvalResult, seconds: float
) -> dict[str, float]:
    """One log row: losses, accuracies, learning rate(s) of the epoch, wall time (s), spike
    rate (spikes per neuron per step, validation) and mean decay fractions per layer."""
    lrs = {g.get("name", "weights"): g["lr"] for g in state.optimizer.param_groups}
    row: dict[str, float] = {"epoch": epoch, **train,
                             "val_loss": val.loss, "val_accuracy": val.accuracy,
                             "val_tie_rate": val.tie_rate, "val_silent_rate": val.silent_rate,
                             "lr": lrs["weights"]}
    if "decays" in lrs:
        row["decay_lr"] = lrs["decays"]
    row["seconds"] = seconds
    row |= {f"spike_rate_{i}": r for i, r in enumerate(val.spike_rate)}
    for i, d in enumerate(state.model.mean_decays()):
        row[f"current_decay_{i}"] = d["current"]
        row[f"voltage_decay_{i}"] = d["voltage"]
    return row

def tensorboard(out: Path, start_epoch: int) -> Any | None:
    """A SummaryWriter under ``out/tb`` if tensorboard is installed, else None (silently)."""
    try:  # optional: tensorboard is not a dependency of randhet
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"), purge_step=start_epoch + 1 if start_epoch else None)

def write_logs(out: Path, rows: list[dict[str, float]]) -> None:
    """``log.csv`` and ``log.jsonl`` from all rows so far (rewritten whole, atomically)."""
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "log.csv", buf.getvalue())
    write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
