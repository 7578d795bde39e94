"""robustness.png: accuracy against epsilon, per attack, one panel per scoring target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_robustness(result: dict[str, Any], path: Path) -> None:
    """Mean accuracy over draws (band: +- std) and worst-case accuracy (dashed) vs eps."""
    present = {t for per in result["curves"].values() for t in per}
    order = ["float", "torch", "emulator"]
    targets = [t for t in order if t in present] + sorted(present - set(order))
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
