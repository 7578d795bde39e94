"""From the protocol's measurements to its typed result and its text summary."""

from __future__ import annotations

from collections import Counter

import numpy as np

from randhet.attack import flags as checks
from randhet.attack.results import (
    Convergence,
    Curve,
    Flag,
    Headline,
    LavaSpotCheck,
    Point,
    RobustnessResult,
    UnitKey,
)
from randhet.attack.schedule import Engine, Measured
from randhet.attack.scoring import Score, auc
from randhet.attack.stats import bootstrap_interval

THREAT_MODEL = {
    "norm": "Linf",
    "input_range": "[0, 1]",
    "eps_on": "pixels in [0, 1]; normalisation and spike encoding are inside the model",
    "attacker_knows": "weights and the decay distribution (white-box), not the draw",
    "decision_rule": "the unique top output spike count; a tie at the top or no output spike "
                     "is wrong",
}


def point(eps: float, preds: np.ndarray, labels: np.ndarray, seed: int = 0) -> Point:
    """One accuracy point from predictions [R draws, N samples]."""
    s = Score.of(preds, labels)
    lo, hi = bootstrap_interval((preds == labels[None]).mean(0), seed=seed)
    return Point(eps, s.mean, s.std, s.worst_case, s.draws, s.tie_rate, s.silent_rate, lo, hi)


def _curve(name: str, target: str, points: list[Point]) -> Curve:
    return Curve(name, target, tuple(points), auc([p.eps for p in points],
                                                  [p.mean for p in points]))


def _joined(engine: Engine, get: object) -> np.ndarray:
    return np.concatenate([get(c) for c in range(len(engine.chunks))], axis=1)  # type: ignore


def build_result(engine: Engine, m: Measured, seconds: float, processes: int,
                 lava: LavaSpotCheck | None) -> RobustnessResult:
    cfg, y = engine.cfg, engine.y.numpy()
    shown = [i for i, e in enumerate(engine.eps) if e in cfg.eps]
    n = len(y)

    def ensemble_preds(ei: int, level: int, target: str) -> np.ndarray:
        return _joined(engine, lambda c: m.states[UnitKey(ei, level, c)].ensemble_preds[target])

    def member_preds(ei: int, level: int, mi: int) -> np.ndarray:
        return _joined(engine, lambda c: m.states[UnitKey(ei, level, c)].member_preds[mi])

    lowest = {ei: int(np.argmin([engine.per_sample_accuracy(m.states, ei, lv).mean()
                                 for lv in range(m.last_level[ei] + 1)])) for ei in shown}
    headline, ensemble = [], []
    for target in engine.predictors:
        pts = []
        for ei in shown:
            lv = lowest[ei]
            p = point(engine.eps[ei], ensemble_preds(ei, lv, target), y)
            pts.append(p)
            sources = Counter(s.split(":", 1)[-1] for c in range(len(engine.chunks))
                              for s in m.states[UnitKey(ei, lv, c)].source)
            headline.append(Headline(p.eps, target, p.mean, p.ci_low, p.ci_high, p.worst_case,
                                     p.tie_rate, p.silent_rate, lv, m.converged[ei],
                                     dict(sources.most_common())))
        ensemble.append(_curve("ensemble", target, pts))
    per_attack = [
        _curve(mem.name, "torch", [point(engine.eps[ei], member_preds(ei, m.last_level[ei], mi),
                                         y) for ei in shown])
        for mi, mem in enumerate(engine.members)]
    baselines = [_curve("noise", "torch", [point(engine.eps[ei], _joined(
        engine, lambda c, e=ei: m.controls[e, c].noise), y) for ei in shown])]
    twin = _curve("sigma0_twin", "twin", [point(engine.eps[ei], _joined(
        engine, lambda c, e=ei: m.controls[e, c].twin), y) for ei in shown])
    baselines.append(twin)
    if cfg.transfer:
        baselines.append(_curve("transfer", "torch", [point(engine.eps[ei], _joined(
            engine, lambda c, e=ei: m.controls[e, c].transfer), y) for ei in shown]))
    convergence = tuple(
        Convergence(engine.eps[ei], m.converged[ei], m.last_level[ei], tuple(m.doublings[ei]),
                    _convergence_note(engine, m, ei)) for ei in shown)
    result_flags = _flags(engine, m, shown, ensemble[list(engine.predictors).index("torch")],
                          per_attack, baselines)
    return RobustnessResult(
        THREAT_MODEL, cfg, n, tuple(mem.name for mem in engine.members), tuple(headline),
        tuple(ensemble), tuple(per_attack), tuple(baselines), convergence, tuple(result_flags),
        lava, seconds, processes)


def _convergence_note(engine: Engine, m: Measured, ei: int) -> str:
    eps = engine.eps[ei]
    if eps == 0:
        return "eps 0: no attack"
    ds = m.doublings[ei]
    if not ds:
        acc = engine.per_sample_accuracy(m.states, ei, 0).mean()
        return ("nothing left to take at the first budget" if acc == 0 else
                "no doubling run (max_doublings = 0): convergence unknown")
    falls = ", ".join(f"{d.doubled} {d.fall:+.3f} (p {d.p_value:.3f})" for d in ds)
    verdict = "converged" if m.converged[ei] else "NOT converged"
    return f"{verdict}; fall per doubling: {falls}"


def _flags(engine: Engine, m: Measured, shown: list[int], ensemble: Curve,
           per_attack: list[Curve], baselines: list[Curve]) -> list[Flag]:
    """Every flag; ``shown``: the indices of the configured eps, ``per_attack`` in the order
    of ``engine.members``."""
    cfg, y = engine.cfg, engine.y.numpy()
    n, floor = len(y), cfg.tolerance
    one = engine.eps.index(1.0)
    out = [checks.unbounded_attack_succeeds(
        float(engine.per_sample_accuracy(m.states, one, 0).mean()))]
    out.append(checks.monotone_in_eps(ensemble, n, floor))
    by_attack = list(zip((mem.attack for mem in engine.members), per_attack, strict=True))
    iterative = [c for attack, c in by_attack if attack in ("pgd", "apgd")]
    fgsm = [c for attack, c in by_attack if attack == "fgsm"]
    if iterative and fgsm:
        best = Curve("best iterative member", "torch", tuple(
            min((c.points[i] for c in iterative), key=lambda p: p.mean)
            for i in range(len(fgsm[0].points))), 0.0)
        out.append(checks.iterative_at_least_single_step(best, fgsm[0], n, floor))
    twin = next(c for c in baselines if c.name == "sigma0_twin")
    if engine.reference is not None:
        mi = engine.members.index(engine.reference)
        level0 = _curve(engine.reference.name, "torch", [point(engine.eps[ei], _joined(
            engine, lambda c, e=ei: m.states[UnitKey(e, 0, c)].member_preds[mi]), y)
            for ei in shown])
        out.append(checks.randomness_off_attack_succeeds(twin, level0, n, floor))
    if engine.free_members and engine.gradient_members:
        alone = []
        for ei in shown:
            if engine.eps[ei] == 0:
                continue
            lv = m.last_level[ei]

            def broken(members: list[int], e: int = ei, level: int = lv) -> np.ndarray:
                accs = [(_joined(engine, lambda c, k=k: m.states[UnitKey(e, level, c)]
                                 .member_preds[k]) == y[None]).mean(0) for k in members]
                return np.min(accs, axis=0) < 0.5
            alone.append(int((broken(engine.free_members)
                              & ~broken(engine.gradient_members)).sum()))
        out.append(checks.gradient_free_not_stronger(alone, n))
    if len(m.cosines):
        out.append(checks.gradient_signal_to_noise(m.cosines))
    if len(m.rises):
        out.append(checks.loss_rises_along_gradient(m.rises))
    for name, flag in (("transfer", "transfer_weaker_than_whitebox"),
                       ("noise", "noise_weaker_than_whitebox")):
        other = next((c for c in baselines if c.name == name), None)
        if other is not None:
            out.append(checks.weaker_than_whitebox(flag, other, ensemble, n, floor))
    out.append(checks.budget_converged([engine.eps[ei] for ei in m.converged
                                        if not m.converged[ei] and engine.eps[ei] in cfg.eps]))
    return out


def summary_lines(result: RobustnessResult) -> list[str]:
    """The headline with its interval, the per-attack rows, tie and silent rates, the budget
    ladder and every flag."""
    lines = ["robust accuracy (ensemble: per sample the worst input over every member and "
             "budget, chosen on selection draws, scored on independent draws; 95 % interval "
             "over samples):"]
    for h in result.headline:
        mark = "" if h.converged else "  NOT CONVERGED"
        lines.append(f"  eps {h.eps:<5g} {h.target:>8}  {h.accuracy:.3f} [{h.ci_low:.3f}, "
                     f"{h.ci_high:.3f}]  worst-case {h.worst_case:.3f}  ties {h.tie_rate:.3f} "
                     f"silent {h.silent_rate:.3f}{mark}")
    lines.append("per attack (torch, mean over scoring draws; AUC):")
    for c in (*result.per_attack, *result.baselines):
        accs = "  ".join(f"{p.eps:.3g}:{p.mean:.3f}" for p in c.points)
        lines.append(f"  {c.name:>36} {c.target:>6}  {accs}  AUC {c.auc:.3f}")
    for conv in result.convergence:
        if conv.eps > 0:
            lines.append(f"budget ladder at eps {conv.eps:g}: {conv.note}")
    for f in result.flags:
        value = "" if f.value is None else f" ({f.value:.3g})"
        lines.append(f"flag {f.name}: {'ok' if f.ok else 'NOT OK'}{value} - {f.rule}")
    if result.lava_spot_check is not None:
        c = result.lava_spot_check
        lines.append(f"lava spot check: {c.samples} samples at eps {c.eps:.3g}, agreement with "
                     f"emulator {c.agreement:.3f}")
    return lines
