"""PNG plots of training and deployment results (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from randhet.plots.figure import pyplot


def _raster(ax: Any, sample_rasters: list[np.ndarray], layers: list[dict[str, Any]]) -> None:
    """Spike raster of one sample, the layers stacked (neurons in any layout, flattened)."""
    base = 0
    for raster, layer in zip(sample_rasters, layers, strict=True):
        raster = raster.reshape(-1, raster.shape[-1])  # neurons x steps
        n, t = np.nonzero(raster)
        ax.scatter(t, n + base, s=4, label=layer["name"])
        base += raster.shape[0]
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron (layers stacked)")
    ax.set_title("spike raster, test sample 0")
    ax.legend(loc="upper right", fontsize=7)


def _sparsity(ax: Any, layers: list[dict[str, Any]]) -> None:
    ax.bar([ly["name"] for ly in layers], [ly["activation_sparsity"] for ly in layers])
    ax.set_ylim(0, 1)
    ax.set_ylabel("activation sparsity")


def plot_deploy(report: dict[str, Any], sample_rasters: list[np.ndarray], path: Path) -> None:
    """Spike raster of the first sample (all layers) and per-layer activation sparsity."""
    plt = pyplot()
    fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(10, 4))
    _raster(ax_r, sample_rasters, report["layers"])
    _sparsity(ax_s, report["layers"])
    acc = "no labels" if report["accuracy"] is None else f"accuracy {report['accuracy']:.3f}"
    ax_s.set_title(f"{report['backend']}: {acc}, "
                   f"{report['energy']['joules_per_sample'] * 1e6:.2f} uJ/sample (est.)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_profile(report: dict[str, Any], sample_rasters: list[np.ndarray], path: Path) -> None:
    """Spike raster of the first sample, per-layer activation sparsity, per-layer SynOps per
    sample (effective vs dense, log scale) and, with a timing basis, each layer's busiest core
    per step (neuron and message sides) against the mean step."""
    layers = report["layers"]
    plt = pyplot()
    timing = report.get("timing", {})
    timed = bool(timing.get("layers"))
    fig, axes = plt.subplots(1, 4 if timed else 3, figsize=(20 if timed else 15, 4))
    ax_r, ax_s, ax_o = axes[:3]
    if timed:
        _timing(axes[3], timing)
    _raster(ax_r, sample_rasters, layers)
    _sparsity(ax_s, layers)
    ax_s.set_title(f"{report['samples']} samples, overall {report['activation_sparsity']:.3f}")
    x = np.arange(len(layers))
    ax_o.bar(x - 0.2, [ly["synops_effective"] for ly in layers], 0.4, label="effective")
    ax_o.bar(x + 0.2, [ly["synops_dense"] for ly in layers], 0.4, label="dense")
    ax_o.set_xticks(x, [ly["name"] for ly in layers])
    ax_o.set_yscale("log")
    ax_o.set_ylabel("synaptic ops / sample")
    ax_o.legend(fontsize=7)
    ax_o.set_title(
        f"{report['profile']}: {report['energy']['joules_per_sample'] * 1e6:.3f} uJ/sample "
        "(est.)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _timing(ax: Any, timing: dict[str, Any]) -> None:
    """Each layer's busiest core: its neuron and message sides (us per step, mean), and the
    mean step (barrier included)."""
    rows = timing["layers"]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["neuron_side_s"] * 1e6 for r in rows], 0.4, label="neuron side")
    ax.bar(x + 0.2, [r["message_side_s"] * 1e6 for r in rows], 0.4, label="message side")
    ax.axhline(timing["time_per_step_s"] * 1e6, color="k", ls="--", lw=1,
               label="mean step (with barrier)")
    ax.set_xticks(x, [r["name"] for r in rows], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("busiest core, us per step")
    ax.legend(fontsize=7)
    ax.set_title(f"time model ({timing['basis']}): {timing['time_per_step_s'] * 1e6:.2f} us/step")


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
    plt = pyplot()
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
