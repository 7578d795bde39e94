"""The protocol's work: units of (eps, budget level, chunk), the budget ladder, caching and the
split over processes.

A unit crafts every ensemble member's inputs for one chunk of samples at one eps and budget,
measures each candidate on the SELECTION draws (torch model; seeds common to every member and
level, so candidates are compared on equal terms), keeps per sample the candidate with the
lowest selection accuracy (ties: the lowest mean margin) among the members and the previous
level's choice, and scores that input on the independent SCORING draws on every target (seeds
common to every level: the ladder's test is paired). Every unit is seeded from the protocol
seed and its own key, so it can run on any rank, be cached and give the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from randhet import distributed as dist
from randhet.attack.base import Attack, attacker_surrogate
from randhet.attack.cache import UnitCache
from randhet.attack.flags import gradient_cosines, loss_rises
from randhet.attack.losses import margin
from randhet.attack.members import Member, build, craft, ensemble_members
from randhet.attack.registry import make_attack
from randhet.attack.results import Doubling, UnitKey
from randhet.attack.scoring import prediction_matrix, torch_predictor
from randhet.attack.settings import GRADIENT, GRADIENT_FREE, ProtocolConfig, parse_surrogate
from randhet.attack.stats import paired_fall
from randhet.deploy.predictors import DeployedScores, emulator_predictor
from randhet.models.base import EVAL_BATCH, Predict
from randhet.network import ExportedNetwork
from randhet.readout import decide

# what a seed is for (the first element of every chunk_seed key)
CRAFT, SELECT, SCORE, CONTROL, CHECKS = range(5)
ATTACK_STREAM = 0  # appended to a unit's key: the seed of the attack's own generator
CLEAN = "clean"  # the source of a sample whose unattacked input is the worst found


@dataclass
class UnitState:
    """What one unit found on its chunk: every member's predictions on the torch scoring
    draws [M, R, n], the chosen inputs, their selection accuracy and margin [n], which member
    (at which level) made each, and the chosen inputs' predictions per target [R, n]."""

    member_preds: np.ndarray
    chosen: np.ndarray
    selection_accuracy: np.ndarray
    selection_margin: np.ndarray
    source: list[str]
    ensemble_preds: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        return {"member_preds": self.member_preds.tolist(), "chosen": self.chosen.tolist(),
                "selection_accuracy": self.selection_accuracy.tolist(),
                "selection_margin": self.selection_margin.tolist(), "source": self.source,
                "ensemble_preds": {k: v.tolist() for k, v in self.ensemble_preds.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnitState:
        return cls(np.asarray(d["member_preds"], dtype=np.int64).reshape(
                       len(d["member_preds"]), -1, len(d["source"])),
                   np.asarray(d["chosen"], dtype=np.float32),
                   np.asarray(d["selection_accuracy"], dtype=np.float64),
                   np.asarray(d["selection_margin"], dtype=np.float64), list(d["source"]),
                   {k: np.asarray(v, dtype=np.int64) for k, v in d["ensemble_preds"].items()})


@dataclass
class Controls:
    """Level-0 baselines on one chunk at one eps: random noise and the transfer input scored
    on the network (torch, [R, n]), and the sigma = 0 twin attacked and scored on itself
    ([1, n]: it is deterministic)."""

    noise: np.ndarray
    twin: np.ndarray
    transfer: np.ndarray | None

    def to_json(self) -> dict[str, Any]:
        return {"noise": self.noise.tolist(), "twin": self.twin.tolist(),
                "transfer": None if self.transfer is None else self.transfer.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Controls:
        t = d["transfer"]
        return cls(np.asarray(d["noise"], dtype=np.int64), np.asarray(d["twin"], dtype=np.int64),
                   None if t is None else np.asarray(t, dtype=np.int64))


@dataclass
class Measured:
    """Everything the report reads: unit states by key, controls by (eps index, chunk), the
    ladder's doublings per eps index, the last level run per eps index, and the gradient
    checks on chunk 0 (cosines between EOT gradients, loss rises along the gradient)."""

    states: dict[UnitKey, UnitState]
    controls: dict[tuple[int, int], Controls]
    doublings: dict[int, list[Doubling]]
    last_level: dict[int, int]
    converged: dict[int, bool]
    cosines: np.ndarray
    rises: np.ndarray


def _seeded(seed: int, models: list[torch.nn.Module], *key: int) -> int:
    """Seed one unit's randomness from the protocol seed and the unit's ``key``: the models'
    generators (EOT draws, rate coding) and torch's global RNG; returns the seed of the
    attack's own generator (random starts, windows, noise), a separate stream of the key."""
    s = dist.chunk_seed(seed, *key)
    torch.manual_seed(s)
    for m in models:
        m.generator.manual_seed(s)
    return dist.chunk_seed(seed, *key, ATTACK_STREAM)


def chunk_slices(samples: int, size: int) -> list[slice]:
    """The protocol's fixed chunks of ``size`` samples (the last may be shorter)."""
    return [slice(i, min(i + size, samples)) for i in range(0, samples, size)]


class Engine:
    """One protocol run's samples, members, targets and units of work."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 cfg: ProtocolConfig, deployed: ExportedNetwork | None,
                 transfer_source: torch.nn.Module | None) -> None:
        self.model, self.x, self.y, self.cfg = model, x, y, cfg
        self.eps = tuple(sorted({*cfg.eps, 1.0}))  # eps = 1: the unbounded-attack check
        self.members: tuple[Member, ...] = ensemble_members(cfg, model, deployed is not None)
        self.gradient_members = [i for i, m in enumerate(self.members) if m.attack in GRADIENT]
        self.free_members = [i for i, m in enumerate(self.members)
                             if m.attack in GRADIENT_FREE]
        self.queried: dict[str, torch.nn.Module] = {"torch": model}
        predictors: dict[str, Predict] = {"torch": torch_predictor(model)}
        if "float" in cfg.targets:
            predictors["float"] = torch_predictor(model.float_twin())
        if deployed is not None:
            self.queried["emulator"] = DeployedScores(deployed)
            if {"emulator", "lava"} & set(cfg.targets):
                predictors["emulator"] = emulator_predictor(deployed)
        order = ("float", "torch", "emulator")
        self.predictors = {t: predictors[t] for t in order if t in predictors}
        self.twin = model.randomness_off_twin()
        self.transfer_source = transfer_source
        self.models = [m for m in (model, self.twin, transfer_source,
                                   self.queried.get("emulator")) if m is not None]
        self.chunks = chunk_slices(len(x), cfg.batch_size)
        reference = self.gradient_members[0] if self.gradient_members else None
        self.reference = None if reference is None else self.members[reference]

    # -- one unit ---------------------------------------------------------------------------
    def _selection(self, x: torch.Tensor, y: torch.Tensor, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and mean margin [n] of inputs x over the selection draws (torch)."""
        correct = np.zeros(len(x))
        margins = np.zeros(len(x))
        model = self.model
        model.eval()
        with torch.no_grad():
            for r in range(self.cfg.selection_draws):
                model.generator.manual_seed(seed + r)
                scores = torch.cat([model(x[i:i + EVAL_BATCH])
                                    for i in range(0, len(x), EVAL_BATCH)])
                correct += (decide(scores) == y).numpy()
                margins += margin(scores.float(), y).numpy()
        n = self.cfg.selection_draws
        return correct / n, margins / n

    def unit(self, key: UnitKey, prev: UnitState | None) -> UnitState:
        """The ensemble at eps ``key.eps_index`` and budget ``key.level`` on chunk
        ``key.chunk``, carrying over the previous level's choice ``prev``."""
        cfg, ei, level, c = self.cfg, key.eps_index, key.level, key.chunk
        eps = self.eps[ei]
        xc, yc = self.x[self.chunks[c]], self.y[self.chunks[c]]
        select_seed = dist.chunk_seed(cfg.seed, SELECT, ei, c)
        score_seed = dist.chunk_seed(cfg.seed, SCORE, ei, c)
        budget = cfg.budget(level)
        candidates: list[tuple[str, torch.Tensor]] = []
        if prev is None:
            candidates.append((CLEAN, xc))
        member_preds = []
        if eps == 0:  # no attack: every member's input is the clean one, scored once
            clean = prediction_matrix(self.predictors["torch"], xc, score_seed, cfg.draws)
            member_preds = [clean] * len(self.members)
        for mi, member in enumerate(self.members if eps > 0 else ()):
            if member.target == "emulator" and prev is not None:
                # about ten torch queries each: the first rung only (its inputs stay candidates)
                member_preds.append(prev.member_preds[mi])
                continue
            start = _seeded(cfg.seed, self.models, CRAFT, ei, level, mi, c)
            attack = build(member, self.model, self.queried.get(member.target, self.model),
                           eps, budget, start)
            x_adv = craft(member, attack, xc, yc, cfg.batch_size)
            candidates.append((f"L{level}:{member.name}", x_adv))
            member_preds.append(prediction_matrix(self.predictors["torch"], x_adv, score_seed,
                                                  cfg.draws))
        n = len(xc)
        if prev is not None:
            best = torch.as_tensor(prev.chosen)
            best_acc, best_margin = prev.selection_accuracy.copy(), prev.selection_margin.copy()
            source = list(prev.source)
        else:
            best, best_acc = xc.clone(), np.full(n, np.inf)
            best_margin, source = np.full(n, np.inf), [""] * n
        for name, cand in candidates:
            acc, mar = self._selection(cand, yc, select_seed)
            better = (acc < best_acc) | ((acc == best_acc) & (mar < best_margin))
            idx = np.flatnonzero(better)
            best[idx] = cand[idx]
            best_acc[idx], best_margin[idx] = acc[idx], mar[idx]
            for i in idx:
                source[i] = name
        preds = {t: prediction_matrix(p, best, score_seed, cfg.draws)
                 for t, p in self.predictors.items()}
        return UnitState(np.stack(member_preds), best.numpy(), best_acc, best_margin, source,
                         preds)

    def controls(self, ei: int, c: int) -> Controls:
        """Noise, the sigma = 0 twin and the transfer input at eps ``ei`` on chunk ``c``."""
        cfg, eps = self.cfg, self.eps[ei]
        xc, yc = self.x[self.chunks[c]], self.y[self.chunks[c]]
        score_seed = dist.chunk_seed(cfg.seed, SCORE, ei, c)
        start = _seeded(cfg.seed, self.models, CONTROL, ei, c)
        noisy = make_attack("noise", self.model, eps, seed=start)(xc, yc)
        noise = prediction_matrix(self.predictors["torch"], noisy, score_seed, cfg.draws)
        ref = self.reference
        if ref is None or eps == 0:
            twin_adv = xc
        else:
            # the twin is deterministic: one draw is its gradient
            budget = dataclasses.replace(cfg.budget(0), eot=1)
            twin_adv = craft(ref, build(ref, self.twin, self.twin, eps, budget, start), xc, yc,
                             cfg.batch_size)
        twin = prediction_matrix(torch_predictor(self.twin), twin_adv, score_seed, 1)
        transfer = None
        if cfg.transfer:
            source_adv = twin_adv
            if self.transfer_source is not None and ref is not None and eps > 0:
                attack = build(ref, self.transfer_source, self.transfer_source, eps,
                               cfg.budget(0), start)
                source_adv = craft(ref, attack, xc, yc, cfg.batch_size)
            transfer = prediction_matrix(self.predictors["torch"], source_adv, score_seed,
                                         cfg.draws)
        return Controls(noise, twin, transfer)

    def gradient_checks(self) -> tuple[np.ndarray, np.ndarray]:
        """On chunk 0's clean inputs, with the reference member's loss, readout and surrogate:
        cosines between independent EOT gradients and the loss's rises along a signed-gradient
        step of the smallest positive eps."""
        if self.reference is None:
            return np.zeros(0), np.zeros(0)
        cfg, ref = self.cfg, self.reference
        _seeded(cfg.seed, self.models, CHECKS)
        xc, yc = self.x[self.chunks[0]], self.y[self.chunks[0]]
        attack = Attack(self.model, eps=0.0, eot=cfg.eot, loss=ref.loss, readout=ref.readout)
        step = min((e for e in self.eps if e > 0), default=0.05)
        was = self.model.training
        self.model.eval()
        try:
            with attacker_surrogate(self.model, parse_surrogate(ref.surrogate)):
                cos = gradient_cosines(attack, xc, yc)
                rises = loss_rises(attack, xc, yc, step, self.model.generator)
        finally:
            self.model.train(was)
        return cos, rises

    # -- the ladder -------------------------------------------------------------------------
    def per_sample_accuracy(self, states: dict[UnitKey, UnitState], ei: int, level: int,
                            target: str = "torch") -> np.ndarray:
        """The chosen inputs' accuracy per sample [N] over the scoring draws."""
        y = self.y.numpy()
        preds = np.concatenate([states[UnitKey(ei, level, c)].ensemble_preds[target]
                                for c in range(len(self.chunks))], axis=1)
        return (preds == y[None]).mean(0)

    def compute(self, cache: UnitCache | None, progress: bool) -> Measured:
        """Level 0 at every eps, then doublings where the ensemble still falls."""
        cfg = self.cfg
        mine = dist.my_chunks(len(self.chunks))
        states: dict[UnitKey, UnitState] = {}
        active = list(range(len(self.eps)))
        doublings: dict[int, list[Doubling]] = {ei: [] for ei in active}
        last_level = {ei: 0 for ei in active}
        converged = {ei: True for ei in active}
        level = 0
        while active:
            work = [UnitKey(ei, level, c) for ei in active for c in mine]
            local: dict[UnitKey, UnitState] = {}
            bar = tqdm(work, desc=f"attacks (budget x{1 << level})",
                       disable=None if progress else True)
            for key in bar:
                local[key] = self._cached(cache, f"unit-{key.eps_index}-{key.level}-"
                                          f"{key.chunk}", UnitState,
                                          lambda k=key: self.unit(k, states.get(
                                              UnitKey(k.eps_index, k.level - 1, k.chunk))))
            states.update(dist.gather_chunks(local))
            still = []
            for ei in active:
                last_level[ei] = level
                now = self.per_sample_accuracy(states, ei, level)
                if level == 0:
                    if self.eps[ei] == 0 or now.mean() == 0:
                        continue  # nothing an attack could still take: converged
                    if cfg.max_doublings == 0:
                        converged[ei] = False  # no doubling asked for: unknown
                    else:
                        still.append(ei)
                    continue
                before = self.per_sample_accuracy(states, ei, level - 1)
                fall, p = paired_fall(before, now, cfg.convergence_margin,
                                      seed=dist.chunk_seed(cfg.seed, ei, level))
                d = Doubling(self.eps[ei], level, cfg.budget(level).doubled,
                             float(before.mean()), float(now.mean()), fall, p,
                             p < cfg.significance)
                doublings[ei].append(d)
                latest = {x.doubled: x for x in doublings[ei]}  # each axis's last doubling
                if now.mean() == 0 or (level >= cfg.doublings
                                       and not any(x.significant for x in latest.values())):
                    converged[ei] = True
                elif level >= cfg.max_doublings:
                    converged[ei] = False
                else:
                    still.append(ei)
            active = still
            level += 1
        controls_local = {(ei, c): self._cached(cache, f"controls-{ei}-{c}", Controls,
                                                lambda e=ei, k=c: self.controls(e, k))
                          for ei in range(len(self.eps)) for c in mine}
        controls = dist.gather_chunks(controls_local)
        cos, rises = self.gradient_checks()
        return Measured(states, controls, doublings, last_level, converged, cos, rises)

    @staticmethod
    def _cached(cache: UnitCache | None, name: str, kind: Any, work: Callable[[], Any]) -> Any:
        if cache is not None:
            stored = cache.load(name)
            if stored is not None:
                return kind.from_json(stored[("state",)])
        value = work()
        if cache is not None:
            cache.save(name, {("state",): value.to_json()})
        return value
