"""Figures of ``randhet analyze``: the loss landscape and the spike rasters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from randhet.plots.figure import pyplot


def plot_landscape(alpha: Sequence[float], beta: Sequence[float],
                   loss_grid: Sequence[Sequence[float]], path: str | Path,
                   title: str = "") -> None:
    """PNG: the loss landscape (``loss_grid`` [alpha][beta], nats) as a 3-D surface (left)
    and a contour map (right)."""
    a = np.asarray(alpha)
    b = np.asarray(beta)
    loss = np.asarray(loss_grid)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    plt = pyplot()
    fig = plt.figure(figsize=(11, 4.5))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    ax3.plot_surface(aa, bb, loss, cmap="viridis", linewidth=0, antialiased=True)
    ax3.set_xlabel("alpha")
    ax3.set_ylabel("beta")
    ax3.set_zlabel("loss (nats)")
    ax3.set_title("loss surface")
    ax2 = fig.add_subplot(1, 2, 2)
    levels = 20 if np.ptp(loss) > 0 else 1
    cs = ax2.contourf(aa, bb, loss, levels=levels, cmap="viridis")
    ax2.contour(aa, bb, loss, levels=levels, colors="k", linewidths=0.4)
    fig.colorbar(cs, ax=ax2, label="loss (nats)")
    ax2.plot([0], [0], "r+", markersize=10)
    ax2.set_xlabel("alpha")
    ax2.set_ylabel("beta")
    ax2.set_title("contours (+: trained weights)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rasters(summaries: dict[str, Any], path: str | Path) -> None:
    """PNG: one spike raster of sample 0 per network (layers stacked) side by side, and the
    per-layer activation sparsity of every network as grouped bars. ``summaries``: network ->
    a spike summary (``activation_sparsity`` and ``layers``, each with ``name``,
    ``timesteps``, ``activation_sparsity`` and ``raster`` bool [neurons, T])."""
    n = len(summaries)
    if n == 0:
        raise ValueError("no spike summaries to plot")
    plt = pyplot()
    fig, axes = plt.subplots(1, n + 1, figsize=(4.5 * (n + 1), 4.5), squeeze=False)
    for ax, (net, summary) in zip(axes[0], summaries.items(), strict=False):
        base = 0
        for layer in summary.layers:
            raster = np.asarray(layer.raster)
            neuron, step = np.nonzero(raster)
            ax.scatter(step, neuron + base, s=2, label=layer.name)
            if base:
                ax.axhline(base - 0.5, color="0.8", linewidth=0.5)
            base += raster.shape[0]
        steps = summary.layers[0].timesteps if summary.layers else 1
        ax.set_xlim(-0.5, steps - 0.5)
        ax.set_xlabel("time step")
        ax.set_ylabel("neuron (layers stacked)")
        ax.set_title(f"{net}\nsparsity {summary.activation_sparsity:.3f}")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax = axes[0][-1]
    depth = max(len(s.layers) for s in summaries.values())
    width = 0.8 / n
    for i, (net, summary) in enumerate(summaries.items()):
        vals = [ly.activation_sparsity for ly in summary.layers]
        ax.bar(np.arange(len(vals)) + (i - (n - 1) / 2) * width, vals, width, label=net)
    ax.set_xticks(range(depth), [f"layer {k}" for k in range(depth)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("activation sparsity (zero outputs / outputs)")
    ax.set_title("per-layer sparsity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
