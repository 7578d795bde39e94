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
        raster = raster.reshape(-1, raster.shape[-1])  # neurons (any layout) x steps
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


def _series(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def _layer_keys(rows: list[dict[str, str]], prefix: str) -> list[str]:
    return [k for k in rows[0] if k.startswith(prefix) and rows[0][k] != ""]


def _panel(ax: Any, epoch: list[int], rows: list[dict[str, str]], curves: dict[str, str],
           ylabel: str, style: str = "-") -> None:
    """One panel: a curve per present column (label -> column name)."""
    for label, key in curves.items():
        if key in rows[0]:
            ax.plot(epoch, _series(rows, key), style, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if ax.lines:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)


def plot_training(log_csv: Path, path: Path) -> None:
    """Training curves from a training log: loss and accuracy (train, clean train under FGSM
    training, validation), learning rate(s), validation spike rate (spikes per neuron per
    step) and mean current/voltage decay fractions per layer."""
    with open(log_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epoch = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    ax = axes.ravel()
    split = {"train": "train_{}", "train (clean)": "clean_{}", "validation": "val_{}"}
    _panel(ax[0], epoch, rows, {k: v.format("loss") for k, v in split.items()}, "loss")
    _panel(ax[1], epoch, rows, {k: v.format("accuracy") for k, v in split.items()}, "accuracy")
    _panel(ax[2], epoch, rows, {"weights": "lr", "mean decays": "decay_lr"}, "learning rate")
    for a, prefix, ylabel in ((ax[3], "spike_rate_", "spike rate (validation)"),
                              (ax[4], "current_decay_", "mean current decay"),
                              (ax[5], "voltage_decay_", "mean voltage decay")):
        keys = _layer_keys(rows, prefix)
        _panel(a, epoch, rows, {f"layer {k[len(prefix):]}": k for k in keys}, ylabel, ".-")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
