"""Accuracy against epsilon: robustness.png (per attack, one panel per scoring target),
compare.png (one line per sigma) and flex_compare.png (one line per BioFlexNet variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from randhet.plots.figure import pyplot


def plot_robustness(result: dict[str, Any], path: Path) -> None:
    """Mean accuracy over draws (band: +- std) and worst-case accuracy (dashed) vs eps."""
    present = {t for per in result["curves"].values() for t in per}
    order = ["float", "torch", "emulator"]
    targets = [t for t in order if t in present] + sorted(present - set(order))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(targets), figsize=(4.5 * len(targets), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        for attack, per in result["curves"].items():
            pts = per.get(target)
            if not pts:
                continue
            eps = [p["eps"] for p in pts]
            mean = [p["mean"] for p in pts]
            std = [p["std"] for p in pts]
            (line,) = ax.plot(eps, mean, marker="o", label=f"{attack} (AUC "
                              f"{result['auc'][attack][target]:.2f})")
            ax.fill_between(eps, [m - s for m, s in zip(mean, std, strict=True)],
                            [m + s for m, s in zip(mean, std, strict=True)],
                            color=line.get_color(), alpha=0.15)
            ax.plot(eps, [p["worst_case"] for p in pts], ls="--", color=line.get_color())
        ax.set_title(f"scored on: {target}")
        ax.set_xlabel("eps (L-inf, pixels in [0, 1])")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    fig.suptitle("solid: mean over draws (+- std); dashed: correct on every draw", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_compare(result: dict[str, Any], path: Path) -> None:
    """Robust accuracy vs eps per attack, one line per sigma (error bars: std over seeds)."""
    plt = pyplot()
    attacks = list(result["table"][0]["robust_accuracy"])
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.8), squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
        for row in result["table"]:
            pts = row["robust_accuracy"][attack]
            ax.errorbar([p["eps"] for p in pts], [p["mean"] for p in pts],
                        yerr=[p["std"] for p in pts], marker="o", capsize=3,
                        label=f"sigma = {row['sigma']:g}")
        ax.set_title(attack)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_flex_compare(result: dict[str, Any], path: Path) -> None:
    """Accuracy vs eps, one panel per attack, one line per variant."""
    plt = pyplot()
    attacks = list(result["variants"][0]["curves"])
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.8), squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
        for r in result["variants"]:
            pts = r["curves"][attack]
            eps, acc = [p["eps"] for p in pts], [p["accuracy"] for p in pts]
            line, = ax.plot(eps, acc, marker="o", linestyle="--" if not r["flex"] else "-",
                            label=r["variant"])
            spread = [p.get("std_over_seeds", 0.0) for p in pts]
            if any(spread):  # several training seeds: +- one std over seeds
                ax.fill_between(eps, [a - d for a, d in zip(acc, spread, strict=True)],
                                [a + d for a, d in zip(acc, spread, strict=True)],
                                color=line.get_color(), alpha=0.15)
        ax.set_title(attack)
        ax.set_xlabel("eps (L-inf, [0, 1] pixels)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
