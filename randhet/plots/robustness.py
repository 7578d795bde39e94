"""Accuracy against epsilon: robustness.png (per attack, one panel per scoring target),
compare.png (one line per grid cell; clean accuracy against hardware cost) and
flex_compare.png (one line per BioFlexNet variant)."""

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


def plot_robustness(result: Any, path: Path) -> None:
    """One panel per scoring target: the ensemble's accuracy (band: 95 % interval over
    samples; dotted: correct on every draw); on the torch panel also every member alone
    (thin) and the baselines (dashed). ``result``: a RobustnessResult."""
    targets = [c.target for c in result.ensemble]

    def draw(ax: Any, i: int) -> None:
        ens = result.ensemble[i]
        eps = [p.eps for p in ens.points]
        (line,) = ax.plot(eps, ens.means(), marker="o", lw=2.5,
                          label=f"ensemble (AUC {ens.auc:.2f})")
        ax.fill_between(eps, [p.ci_low for p in ens.points], [p.ci_high for p in ens.points],
                        color=line.get_color(), alpha=0.2)
        ax.plot(eps, [p.worst_case for p in ens.points], ls=":", color=line.get_color())
        if ens.target != "torch":
            return
        for c in result.per_attack:
            ax.plot(eps, c.means(), lw=0.8, alpha=0.6, label=c.name)
        for c in result.baselines:
            ax.plot(eps, c.means(), ls="--", lw=1, label=f"{c.name} ({c.target})")

    _panels([f"scored on: {t}" for t in targets], draw, path, legend_size=5,
            suptitle="ensemble: per-sample worst over members and budgets (band: 95 % "
                     "interval; dotted: correct on every draw)")


def compare_label(row: Any) -> str:
    """A compare row's legend label: its grid values (short key names); a sigma = 0 control
    shared by several granularities without its granularity. ``row``: a compare Row."""
    def value(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    control = row.cell.get("neuron.sigma", 1) == 0
    cell = {k: v for k, v in row.cell.items()
            if not (control and row.shared_training and k == "neuron.granularity")}
    text = ", ".join(f"{k.split('.')[-1]}={value(v)}" for k, v in cell.items())
    return text + (" (control)" if control else "")


def plot_compare(result: Any, path: Path) -> None:
    """Left: the ensemble's accuracy vs eps, one line per grid cell (band: +- std over seeds;
    sigma = 0 controls dashed, a shared control drawn once). Right: clean accuracy against the
    fit profile's redraw writes per sample (against cores when no cell redraws), error bars:
    std over seeds. ``result``: a CompareResult."""
    plt = pyplot()
    rows, seen = [], set()
    for row in result.rows:
        if row.training not in seen:  # controls shared by several cells: one line
            seen.add(row.training)
            rows.append(row)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = []
    for row in rows:
        pts = row.robust_accuracy
        eps = [p.eps for p in pts]
        mean = [p.stat.mean for p in pts]
        control = row.cell.get("neuron.sigma", 1) == 0
        (line,) = left.plot(eps, mean, marker="o", ls="--" if control else "-",
                            label=compare_label(row))
        _band(left, eps, mean, [p.stat.std for p in pts], line.get_color())
        colors.append(line.get_color())
    left.set_title(f"ensemble, scored on: {result.target}")
    left.set_xlabel("eps (L-inf, pixels in [0, 1])")
    left.set_ylabel("accuracy")
    left.set_ylim(0, 1)
    left.legend(fontsize=7)
    by_redraw = any(r.fit.redraw_writes_per_sample.mean for r in rows)
    for row, color in zip(rows, colors, strict=True):
        x = row.fit.redraw_writes_per_sample if by_redraw else row.fit.cores
        y = row.clean_accuracy
        if x.mean is not None:
            right.errorbar([x.mean], [y.mean], xerr=[x.std], yerr=[y.std],
                           marker="o", capsize=3, color=color)
    right.set_xlabel(f"{result.fit_profile} "
                     + ("redraw register writes per sample" if by_redraw else "cores"))
    right.set_ylabel("clean accuracy (emulator)")
    right.set_title("clean accuracy vs hardware cost")
    right.grid(alpha=0.3)
    fig.suptitle(f"mean ± std over {len(result.seeds)} training seed(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_flex_compare(result: Any, path: Path) -> None:
    """Accuracy vs eps, one panel per attack, one line per variant (band: +- std over seeds).
    ``result``: a FlexCompareResult."""
    attacks = list(result.variants[0].curves)

    def draw(ax: Any, i: int) -> None:
        for r in result.variants:
            pts = r.curves[attacks[i]]
            eps, acc = [p.eps for p in pts], [p.accuracy for p in pts]
            line, = ax.plot(eps, acc, marker="o", linestyle="--" if not r.flex else "-",
                            label=r.variant)
            spread = [p.std_over_seeds or 0.0 for p in pts]
            if any(spread):  # several training seeds: +- one std over seeds
                _band(ax, eps, acc, spread, line.get_color())

    _panels(attacks, draw, path)
