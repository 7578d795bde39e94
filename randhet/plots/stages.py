"""PNG plots of training and deployment results (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from randhet.plots.figure import pyplot


@dataclass(frozen=True)
class LayerBars:
    """One spiking layer's bars: its activation sparsity and SynOps per sample."""

    name: str
    sparsity: float
    synops_effective: float
    synops_dense: int


@dataclass(frozen=True)
class CoreTimes:
    """One layer's busiest core: its neuron and message sides, seconds per step."""

    name: str
    neuron_side_s: float
    message_side_s: float


def _raster(ax: Any, sample_rasters: list[np.ndarray], names: list[str]) -> None:
    """Spike raster of one sample, the layers stacked (neurons in any layout, flattened)."""
    base = 0
    for raster, name in zip(sample_rasters, names, strict=True):
        raster = raster.reshape(-1, raster.shape[-1])  # neurons x steps
        n, t = np.nonzero(raster)
        ax.scatter(t, n + base, s=4, label=name)
        base += raster.shape[0]
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron (layers stacked)")
    ax.set_title("spike raster, test sample 0")
    ax.legend(loc="upper right", fontsize=7)


def _sparsity(ax: Any, layers: list[LayerBars]) -> None:
    ax.bar([ly.name for ly in layers], [ly.sparsity for ly in layers])
    ax.set_ylim(0, 1)
    ax.set_ylabel("activation sparsity")


def plot_deploy(sample_rasters: list[np.ndarray], layers: list[LayerBars], title: str,
                path: Path) -> None:
    """Spike raster of the first sample (all layers) and per-layer activation sparsity."""
    plt = pyplot()
    fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(10, 4))
    _raster(ax_r, sample_rasters, [ly.name for ly in layers])
    _sparsity(ax_s, layers)
    ax_s.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_profile(sample_rasters: list[np.ndarray], layers: list[LayerBars],
                 sparsity_title: str, synops_title: str, cores: list[CoreTimes],
                 step_s: float | None, path: Path) -> None:
    """Spike raster of the first sample, per-layer activation sparsity, per-layer SynOps per
    sample (effective vs dense, log scale) and, given a time model (``cores``, ``step_s``),
    each layer's busiest core per step (neuron and message sides) against the mean step."""
    plt = pyplot()
    timed = bool(cores) and step_s is not None
    fig, axes = plt.subplots(1, 4 if timed else 3, figsize=(20 if timed else 15, 4))
    ax_r, ax_s, ax_o = axes[:3]
    if timed and step_s is not None:
        _timing(axes[3], cores, step_s)
    _raster(ax_r, sample_rasters, [ly.name for ly in layers])
    _sparsity(ax_s, layers)
    ax_s.set_title(sparsity_title)
    x = np.arange(len(layers))
    ax_o.bar(x - 0.2, [ly.synops_effective for ly in layers], 0.4, label="effective")
    ax_o.bar(x + 0.2, [ly.synops_dense for ly in layers], 0.4, label="dense")
    ax_o.set_xticks(x, [ly.name for ly in layers])
    ax_o.set_yscale("log")
    ax_o.set_ylabel("synaptic ops / sample")
    ax_o.legend(fontsize=7)
    ax_o.set_title(synops_title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _timing(ax: Any, rows: list[CoreTimes], step_s: float) -> None:
    """Each layer's busiest core: its neuron and message sides (us per step, mean), and the
    mean step (barrier included)."""
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r.neuron_side_s * 1e6 for r in rows], 0.4, label="neuron side")
    ax.bar(x + 0.2, [r.message_side_s * 1e6 for r in rows], 0.4, label="message side")
    ax.axhline(step_s * 1e6, color="k", ls="--", lw=1, label="mean step (with barrier)")
    ax.set_xticks(x, [r.name for r in rows], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("busiest core, us per step")
    ax.legend(fontsize=7)
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
