"""The robustness protocol for randomized spiking networks (robustness-protocol notes).

For every attack and epsilon: craft adversarial inputs on the differentiable (quantized torch)
model with EOT gradients, then score them with R fresh draws on each target: the float model
(unquantized weights), the quantized torch model, and the deployed network (emulator; Lava for
a spot check that must agree with the emulator). Sanity checks are computed as named flags with
their numbers: chance reached, monotone in eps, iterative >= single-step, randomness-off control,
zero-gradient fraction, transfer and noise weaker than white-box; a convergence check reruns PGD
with twice the steps, half the EOT draws and twice the restarts.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from randhet import distributed as dist
from randhet.attack.base import Attack, attacker_surrogate
from randhet.attack.cache import UnitCache
from randhet.attack.registry import make_attack
from randhet.attack.scoring import Score, auc, prediction_matrix, torch_predictor
from randhet.attack.settings import ITERATIVE, ProtocolConfig, Surrogate
from randhet.attack.transfer import Transfer
from randhet.deploy.predictors import emulator_predictor, lava_predictor
from randhet.models.base import Predict
from randhet.network import ExportedNetwork


@dataclass
class Curves:
    """points[attack][target] = list of {eps, mean, std, worst_case, draws}."""

    points: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)

    def add(self, attack: str, target: str, eps: float, s: Any) -> None:
        self.points.setdefault(attack, {}).setdefault(target, []).append(
            {"eps": eps, **s.to_dict()})

    def means(self, attack: str, target: str) -> list[float]:
        return [p["mean"] for p in self.points.get(attack, {}).get(target, [])]


RANDOMIZED = (*ITERATIVE, "noise")  # attacks with their own generator (a ``seed`` option)


def _attack(model: torch.nn.Module, name: str, eps: float, cfg: ProtocolConfig,
            seed: int) -> Attack:
    """Attack ``name`` on ``model`` with the protocol's options. ``seed`` seeds the attack's
    own generator (random starts or noise, attacks in :data:`RANDOMIZED`); the EOT draws come
    from the model's generator, which the caller seeds (:func:`_seeded`)."""
    opts: dict[str, Any] = {"eot": cfg.eot}
    if name in ITERATIVE:
        opts.update(steps=cfg.steps, restarts=cfg.restarts)
    if name in RANDOMIZED:
        opts["seed"] = seed
    return make_attack(name, model, eps, **opts)


def _craft(attack: Attack | Transfer, x: torch.Tensor, y: torch.Tensor,
           cfg: ProtocolConfig) -> torch.Tensor:
    """Adversarial inputs, ``cfg.batch_size`` at a time, with the attacker's surrogate."""
    model = attack.source if isinstance(attack, Transfer) else attack.model
    out = []
    with attacker_surrogate(model, Surrogate(width=cfg.surrogate_tau)):
        for i in range(0, len(x), cfg.batch_size):
            out.append(attack(x[i:i + cfg.batch_size], y[i:i + cfg.batch_size]))
    return torch.cat(out)


def convergence_settings(cfg: ProtocolConfig
                         ) -> tuple[float, dict[str, tuple[int, int, int]]]:
    """The convergence check's eps (the middle positive eps) and its PGD (steps, eot, restarts)
    runs: as configured, with twice the steps, with half the draws, with twice the restarts."""
    positive = [e for e in cfg.eps if e > 0]
    runs = {
        "configured": (cfg.steps, cfg.eot, cfg.restarts),
        "double_steps": (2 * cfg.steps, cfg.eot, cfg.restarts),
        "half_eot": (cfg.steps, max(1, cfg.eot // 2), cfg.restarts),
        "double_restarts": (cfg.steps, cfg.eot, 2 * cfg.restarts),
    }
    return positive[(len(positive) - 1) // 2], runs


def convergence_result(cfg: ProtocolConfig, acc: dict[str, float], samples: int
                       ) -> dict[str, Any]:
    """The headline numbers should not move beyond sampling noise (:func:`slack`): doubling the
    steps or the restarts changes little and EOT has settled (robustness protocol)."""
    eps, runs = convergence_settings(cfg)
    tol = slack(acc["configured"], samples, cfg.tolerance)

    def close(run: str) -> bool:
        return abs(acc[run] - acc["configured"]) <= tol

    return {
        "eps": eps,
        "settings": {k: {"steps": v[0], "eot": v[1], "restarts": v[2]} for k, v in runs.items()},
        "accuracy": acc,
        "steps_converged": close("double_steps"),
        "eot_settled": close("half_eot"),
        "restarts_converged": close("double_restarts"),
        "tolerance": tol,
    }


def zero_gradient_fraction(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                           eot: int) -> float:
    """Fraction of inputs whose (EOT) input gradient is exactly zero: a gradient-masking sign."""
    probe = Attack(model, eps=0.0, eot=eot)
    _, grad = probe.loss_and_grad(x, y)
    return float((grad.reshape(len(x), -1).abs().sum(1) == 0).float().mean())


def slack(accuracy: float, samples: int, floor: float) -> float:
    """Allowed difference between two accuracies on ``samples`` inputs: two binomial standard
    errors, at least ``floor``."""
    return max(floor, 2.0 * (max(accuracy * (1 - accuracy), 0.0) / max(samples, 1)) ** 0.5)


def flags(curves: Curves, cfg: ProtocolConfig, num_classes: int, zero_grad: float,
          twin: list[float], transfer: list[float], samples: int = 1
          ) -> dict[str, dict[str, Any]]:
    """The protocol's sanity checks, each a flag with the numbers behind it. Orderings allow
    for sampling noise (:func:`slack`)."""

    def tol_at(p: float) -> float:
        return slack(p, samples, cfg.tolerance)

    chance = 1.0 / num_classes
    out: dict[str, dict[str, Any]] = {}
    strongest = [a for a in ITERATIVE if a in curves.points] or list(curves.points)
    final = {a: curves.means(a, "torch")[-1] for a in strongest}
    best = min(final.values())
    out["chance_reached"] = {"ok": best <= chance + 0.1, "accuracy_at_max_eps": best,
                             "chance": chance, "max_eps": max(cfg.eps)}
    mono = {a: all(b <= a0 + tol_at(a0) for a0, b in zip(curves.means(a, "torch"),
                                                  curves.means(a, "torch")[1:], strict=False))
            for a in curves.points if a != "noise"}
    out["monotone_in_eps"] = {"ok": all(mono.values()), "per_attack": mono}
    if "fgsm" in curves.points and "pgd" in curves.points:
        pgd, fgsm = curves.means("pgd", "torch"), curves.means("fgsm", "torch")
        ok = all(p <= f + tol_at(f) for p, f in zip(pgd, fgsm, strict=True))
        out["iterative_at_least_single_step"] = {"ok": ok, "pgd": pgd, "fgsm": fgsm}
    if twin:
        ref = curves.means("pgd", "torch") if "pgd" in curves.points else []
        ok = bool(ref) and all(t <= r + tol_at(r) for t, r in zip(twin, ref, strict=True))
        out["randomness_off_attack_succeeds"] = {
            "ok": ok, "sigma0_twin_pgd": twin, "randomized_pgd": ref,
            "meaning": "PGD on the same weights with sigma = 0 succeeds at least as well",
        }
    out["zero_gradient_fraction"] = {"ok": zero_grad < 0.05, "fraction": zero_grad}
    if "pgd" in curves.points:
        white = curves.means("pgd", "torch")
        if transfer:
            ok = all(t >= w - tol_at(w) for t, w in zip(transfer, white, strict=True))
            out["transfer_weaker_than_whitebox"] = {"ok": ok, "transfer": transfer,
                                                    "whitebox": white}
        if "noise" in curves.points:
            noise = curves.means("noise", "torch")
            ok = all(n >= w - tol_at(w) for n, w in zip(noise, white, strict=True))
            out["noise_weaker_than_whitebox"] = {"ok": ok, "noise": noise, "whitebox": white}
    return out


# what a seed is for (the first element of every chunk_seed key)
CRAFT, SCORE, TWIN, TRANSFER, CONVERGENCE, ZERO_GRAD = range(6)
ATTACK_STREAM = 0  # appended to a unit's key: the seed of the attack's own generator


def _seeded(seed: int, models: list[torch.nn.Module], *key: int) -> int:
    """Seed one unit of work from the protocol seed and the unit's identity ``key``: the
    models' generators (EOT decay draws, rate coding) and torch's global RNG with
    ``chunk_seed(seed, *key)``; returns the seed for the attack's own generator (random starts,
    noise), ``chunk_seed(seed, *key, ATTACK_STREAM)``, a separate stream from the same key."""
    s = dist.chunk_seed(seed, *key)
    torch.manual_seed(s)
    for m in models:
        m.generator.manual_seed(s)
    return dist.chunk_seed(seed, *key, ATTACK_STREAM)


def chunk_slices(samples: int, size: int) -> list[slice]:
    """The protocol's fixed chunks of ``size`` samples (the last may be shorter)."""
    return [slice(i, min(i + size, samples)) for i in range(0, samples, size)]


Entries = dict[tuple[Any, ...], Any]  # a unit's results, keyed by what they are


class _Protocol:
    """One robustness run: its samples, settings, scoring targets and units of work.

    A unit is one attack at one eps on one chunk (:meth:`attack_unit`) or the checks on one
    chunk (:meth:`check_unit`); each is seeded from the protocol seed and its own key, so it can
    run on any rank, be cached, and give the same entries.
    """

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 cfg: ProtocolConfig, deployed: ExportedNetwork | None,
                 transfer_source: torch.nn.Module | None) -> None:
        self.model, self.x, self.y, self.cfg = model, x, y, cfg
        self.deployed, self.transfer_source = deployed, transfer_source
        predictors: dict[str, Predict] = {"torch": torch_predictor(model)}
        if "float" in cfg.targets:
            predictors["float"] = torch_predictor(model.float_twin())
        if deployed is not None and {"emulator", "lava"} & set(cfg.targets):
            predictors["emulator"] = emulator_predictor(deployed)
        order = ("float", "torch", "emulator")
        self.predictors = {t: predictors[t] for t in order if t in predictors}
        self.twin = model.randomness_off_twin()
        self.models = [m for m in (model, self.twin, transfer_source) if m is not None]
        self.chunks = chunk_slices(len(x), cfg.batch_size)
        self.converge = "pgd" in cfg.attacks and max(cfg.eps) > 0

    def _craft(self, model: torch.nn.Module, name: str, eps: float, c: int,
               cfg: ProtocolConfig, *key: int) -> torch.Tensor:
        """Chunk ``c``'s adversarial inputs, every generator seeded from ``key``."""
        start = _seeded(self.cfg.seed, self.models, *key)
        xc, yc = self.x[self.chunks[c]], self.y[self.chunks[c]]
        return _craft(_attack(model, name, eps, cfg, start), xc, yc, cfg)

    def _score(self, target: str, x_adv: torch.Tensor, c: int, seed: int,
               draws: int | None = None) -> Any:
        return prediction_matrix(self.predictors[target], x_adv, seed,
                                 self.cfg.draws if draws is None else draws)

    def attack_unit(self, ai: int, name: str, ei: int, eps: float, c: int) -> Entries:
        """One attack at one eps on chunk c, scored on every target (+ the PGD controls: the
        sigma = 0 twin, the transfer check and, at the largest eps, the Lava spot check)."""
        cfg, out = self.cfg, {}
        x_adv = self._craft(self.model, name, eps, c, cfg, CRAFT, ai, ei, c)
        seed = dist.chunk_seed(cfg.seed, SCORE, ai, ei, c)
        for target in self.predictors:
            out[name, target, ei, c] = self._score(target, x_adv, c, seed)
        if name != "pgd":
            return out
        start = _seeded(cfg.seed, self.models, TWIN, ei, c)
        twin_attack = Transfer(_attack(self.twin, "pgd", eps, cfg, start))
        xc, yc = self.x[self.chunks[c]], self.y[self.chunks[c]]
        twin_adv = _craft(twin_attack, xc, yc, cfg)
        out["twin", ei, c] = prediction_matrix(torch_predictor(self.twin), twin_adv, seed, 1)
        if cfg.transfer:  # crafted on the twin (reused) or on another run, scored here
            source_adv = twin_adv
            if self.transfer_source is not None:
                start = _seeded(cfg.seed, self.models, TRANSFER, ei, c)
                source = Transfer(_attack(self.transfer_source, "pgd", eps, cfg, start))
                source_adv = _craft(source, xc, yc, cfg)
            out["transfer", ei, c] = self._score("torch", source_adv, c, seed)
        if "lava" in cfg.targets and self.deployed is not None and eps == max(cfg.eps) \
                and c == 0:
            out["lava",] = _lava_spot_check(self.deployed, x_adv, yc, cfg, seed)
        return out

    def check_unit(self, c: int) -> Entries:
        """The zero-gradient probe (chunk 0) and the convergence check's PGD runs on chunk c,
        all seeded alike (common random numbers: the runs differ by their settings alone)."""
        cfg, out = self.cfg, {}
        if c == 0:
            _seeded(cfg.seed, self.models, ZERO_GRAD)
            xc, yc = self.x[self.chunks[c]], self.y[self.chunks[c]]
            out["zero_grad",] = zero_gradient_fraction(self.model, xc, yc, cfg.eot)
        if self.converge:
            eps, runs = convergence_settings(cfg)
            seed = dist.chunk_seed(cfg.seed, SCORE, CONVERGENCE, c)
            for name, (steps, eot, restarts) in runs.items():
                variant = dataclasses.replace(cfg, steps=steps, eot=eot, restarts=restarts)
                x_adv = self._craft(self.model, "pgd", eps, c, variant, CONVERGENCE, c)
                out["converge", name, c] = self._score("torch", x_adv, c, seed)
        return out

    def units(self) -> list[tuple[str, Callable[[], Entries]]]:
        """This rank's units: (cache name, work)."""
        mine = dist.my_chunks(len(self.chunks))
        cfg = self.cfg
        units = [(f"attack{ai}-eps{ei}-chunk{c}",
                  functools.partial(self.attack_unit, ai, a, ei, e, c))
                 for ai, a in enumerate(cfg.attacks) for ei, e in enumerate(cfg.eps)
                 for c in mine]
        return units + [(f"checks-chunk{c}", functools.partial(self.check_unit, c))
                        for c in mine]

    def compute(self, cache: UnitCache | None, progress: bool) -> Entries:
        """Every unit's entries, gathered from every rank (cached units are reused)."""
        local: Entries = {}
        for unit, work in tqdm(self.units(), desc="attacks", disable=None if progress else True):
            entries = cache.load(unit) if cache is not None else None
            if entries is None:
                entries = work()
                if cache is not None:
                    cache.save(unit, entries)
            local.update(entries)
        return dist.gather_chunks(local)

    def report(self, merged: Entries, num_classes: int, seconds: float) -> dict[str, Any]:
        """The result JSON: curves, AUC, flags, convergence and the controls."""
        cfg, n_eps = self.cfg, len(self.cfg.eps)

        def joined(*key: Any) -> Score:
            return Score.of(np.concatenate([merged[(*key, c)] for c in range(len(self.chunks))],
                                           axis=1), self.y.numpy())

        curves = Curves()
        for name in cfg.attacks:
            for ei, eps in enumerate(cfg.eps):
                for target in self.predictors:
                    curves.add(name, target, eps, joined(name, target, ei))
        twin_curve = transfer_curve = []
        if "pgd" in cfg.attacks:
            twin_curve = [joined("twin", ei).mean for ei in range(n_eps)]
            if cfg.transfer:
                transfer_curve = [joined("transfer", ei).mean for ei in range(n_eps)]
        convergence = None
        if self.converge:
            acc = {name: joined("converge", name).mean for name in convergence_settings(cfg)[1]}
            convergence = convergence_result(cfg, acc, len(self.x))
        result: dict[str, Any] = {
            "threat_model": THREAT_MODEL | {
                "gradients": "surrogate gradients through the spiking dynamics, "
                             f"EOT over {cfg.eot} fresh draws per step, batched"},
            "config": cfg.to_dict(),
            "samples": len(self.x),
            "curves": curves.points,
            "auc": {a: {t: auc([p["eps"] for p in pts], [p["mean"] for p in pts])
                        for t, pts in per.items()} for a, per in curves.points.items()},
            "flags": flags(curves, cfg, num_classes, merged["zero_grad",], twin_curve,
                           transfer_curve, len(self.x)),
            "convergence": convergence,
            "seconds": seconds,
            "processes": dist.world().size,
        }
        if twin_curve:
            result["sigma0_twin"] = {"pgd_accuracy": twin_curve, "eps": list(cfg.eps)}
        if transfer_curve:
            result["transfer"] = {
                "source": "sigma = 0 twin" if self.transfer_source is None else "another run",
                "pgd_accuracy": transfer_curve, "eps": list(cfg.eps),
            }
        if ("lava",) in merged:
            result["lava_spot_check"] = merged["lava",]
        return result


THREAT_MODEL = {
    "norm": "Linf",
    "input_range": [0.0, 1.0],
    "eps_on": "pixels in [0, 1]; normalisation and spike encoding are inside the model",
    "attacker_knows": "weights and the decay distribution (white-box), not the draw",
}


def run_protocol(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ProtocolConfig,
    num_classes: int,
    deployed: ExportedNetwork | None = None,
    progress: bool = True,
    transfer_source: torch.nn.Module | None = None,
    cache: UnitCache | None = None,
) -> dict[str, Any]:
    """Run every attack at every eps, score on every target, compute the flags.

    ``deployed``: the exported network (needed for the emulator and lava targets);
    ``transfer_source``: the model the transfer attack is crafted on (default: the sigma = 0
    twin of the same weights).

    The samples are cut into chunks of ``cfg.batch_size``; every chunk's crafting (EOT draws,
    random starts, noise: :func:`_seeded`) and scoring is seeded from (``cfg.seed``, what,
    attack, eps, chunk), so under torchrun each rank takes every N-th chunk and the gathered
    result is the one a single process computes. With a ``cache`` every finished unit of work
    is kept on disk and a rerun skips it (interrupted runs resume to the same result).
    """
    t0 = time.perf_counter()
    protocol = _Protocol(model, x, y, cfg, deployed, transfer_source)
    merged = protocol.compute(cache, progress)
    return protocol.report(merged, num_classes, time.perf_counter() - t0)


def _lava_spot_check(deployed: ExportedNetwork, x_adv: torch.Tensor, y: torch.Tensor,
                     cfg: ProtocolConfig, seed: int) -> dict[str, Any]:
    """A few adversarial inputs through Lava and the emulator with the same draw."""
    n = min(cfg.lava_spot_samples, len(x_adv))
    xs, ys = x_adv[:n], y[:n]
    lava = lava_predictor(deployed)(xs, seed)
    emu = emulator_predictor(deployed)(xs, seed)
    return {"samples": n, "eps": max(cfg.eps), "agreement": float((lava == emu).mean()),
            "lava_accuracy": float((lava == ys.numpy()).mean()),
            "emulator_accuracy": float((emu == ys.numpy()).mean())}


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short text summary: accuracy per attack at each eps on each target, then the flags."""
    lines = []
    for attack, per in result["curves"].items():
        for target, pts in per.items():
            accs = "  ".join(f"{p['eps']:.3g}:{p['mean']:.3f}" for p in pts)
            area = result["auc"][attack][target]
            lines.append(f"{attack:>14} {target:>8}  {accs}  AUC {area:.3f}")
    for name, f in result["flags"].items():
        lines.append(f"flag {name}: {'ok' if f['ok'] else 'NOT OK'}")
    conv = result.get("convergence")
    if conv:
        a = conv["accuracy"]
        lines.append(f"PGD at eps {conv['eps']:.3g}: {a['configured']:.3f} configured, "
                     f"{a['double_steps']:.3f} with 2x steps, {a['half_eot']:.3f} with half EOT, "
                     f"{a['double_restarts']:.3f} with 2x restarts (steps converged: "
                     f"{conv['steps_converged']}, EOT settled: {conv['eot_settled']}, "
                     f"restarts converged: {conv['restarts_converged']}; tolerance "
                     f"{conv['tolerance']:.3f})")
    if "lava_spot_check" in result:
        c = result["lava_spot_check"]
        lines.append(f"lava spot check: {c['samples']} samples at eps {c['eps']:.3g}, "
                     f"agreement with emulator {c['agreement']:.3f}")
    return lines
