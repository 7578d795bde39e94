"""PNG plots of training and deployment results (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_deploy(report: dict[str, Any], sample_rasters: list[np.ndarray], path: Path) -> None:
    """Spike raster of the first sample (all layers) and per-layer activation sparsity."""
    fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(10, 4))
    base = 0
    for raster, layer in zip(sample_rasters, report["layers"], strict=True):
        n, t = np.nonzero(raster)
        ax_r.scatter(t, n + base, s=4, label=layer["name"])
        base += raster.shape[0]
    ax_r.set_xlabel("time step")
    ax_r.set_ylabel("neuron (layers stacked)")
    ax_r.set_title("spike raster, test sample 0")
    ax_r.legend(loc="upper right", fontsize=7)
    names = [layer["name"] for layer in report["layers"]]
    ax_s.bar(names, [layer["activation_sparsity"] for layer in report["layers"]])
    ax_s.set_ylim(0, 1)
    ax_s.set_ylabel("activation sparsity")
    ax_s.set_title(
        f"{report['backend']}: accuracy {report['accuracy']:.3f}, "
        f"{report['energy']['joules_per_sample'] * 1e6:.2f} uJ/sample (est.)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_training(log_csv: Path, path: Path) -> None:
    """Loss and accuracy per epoch from a training log."""
    with open(log_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epoch = [int(r["epoch"]) for r in rows]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_l.plot(epoch, [float(r["train_loss"]) for r in rows], label="train")
    ax_l.plot(epoch, [float(r["val_loss"]) for r in rows], label="validation")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("loss")
    ax_l.legend()
    ax_a.plot(epoch, [float(r["train_accuracy"]) for r in rows], label="train")
    ax_a.plot(epoch, [float(r["val_accuracy"]) for r in rows], label="validation")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy")
    ax_a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
