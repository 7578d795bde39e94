"""Accuracy against epsilon: robustness.png (per attack, one panel per scoring target),
compare.png (one line per sigma) and flex_compare.png (one line per BioFlexNet variant)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from randhet.plots.figure import pyplot


def _panels(titles: list[str], draw: Callable[[Any, int], None], path: Path,
            legend_size: int = 7, suptitle: str = "") -> None:
    """One accuracy-vs-eps panel per title side by side; ``draw(ax, i)`` fills panel i."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(titles), figsize=(4.5 * len(titles), 3.8), squeeze=False)
    for i, (ax, title) in enumerate(zip(axes[0], titles, strict=True)):
        draw(ax, i)
        ax.set_title(title)
        ax.set_xlabel("eps (L-inf, pixels in [0, 1])")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=legend_size)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _band(ax: Any, eps: list[float], mid: list[float], spread: list[float], color: Any) -> None:
    ax.fill_between(eps, [m - s for m, s in zip(mid, spread, strict=True)],
                    [m + s for m, s in zip(mid, spread, strict=True)], color=color, alpha=0.15)


def plot_robustness(result: dict[str, Any], path: Path) -> None:
    """Mean accuracy over draws (band: +- std) and worst-case accuracy (dashed) vs eps."""
    present = {t for per in result["curves"].values() for t in per}
    order = ["float", "torch", "emulator"]
    targets = [t for t in order if t in present] + sorted(present - set(order))

    def draw(ax: Any, i: int) -> None:
        target = targets[i]
        for attack, per in result["curves"].items():
            pts = per.get(target)
            if not pts:
                continue
            eps, mean = [p["eps"] for p in pts], [p["mean"] for p in pts]
            (line,) = ax.plot(eps, mean, marker="o", label=f"{attack} (AUC "
                              f"{result['auc'][attack][target]:.2f})")
            _band(ax, eps, mean, [p["std"] for p in pts], line.get_color())
            ax.plot(eps, [p["worst_case"] for p in pts], ls="--", color=line.get_color())

    _panels([f"scored on: {t}" for t in targets], draw, path,
            suptitle="solid: mean over draws (+- std); dashed: correct on every draw")


def plot_compare(result: dict[str, Any], path: Path) -> None:
    """Robust accuracy vs eps per attack, one line per sigma (error bars: std over seeds)."""
    attacks = list(result["table"][0]["robust_accuracy"])

    def draw(ax: Any, i: int) -> None:
        for row in result["table"]:
            pts = row["robust_accuracy"][attacks[i]]
            ax.errorbar([p["eps"] for p in pts], [p["mean"] for p in pts],
                        yerr=[p["std"] for p in pts], marker="o", capsize=3,
                        label=f"sigma = {row['sigma']:g}")

    _panels(attacks, draw, path, legend_size=8)


def plot_flex_compare(result: dict[str, Any], path: Path) -> None:
    """Accuracy vs eps, one panel per attack, one line per variant (band: +- std over seeds)."""
    attacks = list(result["variants"][0]["curves"])

    def draw(ax: Any, i: int) -> None:
        for r in result["variants"]:
            pts = r["curves"][attacks[i]]
            eps, acc = [p["eps"] for p in pts], [p["accuracy"] for p in pts]
            line, = ax.plot(eps, acc, marker="o", linestyle="--" if not r["flex"] else "-",
                            label=r["variant"])
            spread = [p.get("std_over_seeds", 0.0) for p in pts]
            if any(spread):  # several training seeds: +- one std over seeds
                _band(ax, eps, acc, spread, line.get_color())

    _panels(attacks, draw, path)
