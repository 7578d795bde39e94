"""The robustness protocol for randomized spiking networks (robustness-protocol notes).

For every eps an ensemble of attacks (:mod:`randhet.attack.members`: every gradient attack
with every loss, readout and attacker's surrogate, and the gradient-free Square on the torch
model and on the deployed network) crafts candidates; per sample the worst is chosen on
selection draws and scored on independent draws on every target (the float model, the
quantized torch model, the deployed network on the emulator; Lava for a spot check). The
budget doubles until the ensemble stops falling (:mod:`randhet.attack.schedule`); the result
is typed (:mod:`randhet.attack.results`) with its sanity flags (:mod:`randhet.attack.flags`).
"""

from __future__ import annotations

import time

import torch

from randhet import distributed as dist
from randhet.attack.cache import UnitCache
from randhet.attack.report import build_result
from randhet.attack.results import LavaSpotCheck, RobustnessResult, UnitKey
from randhet.attack.schedule import SCORE, Engine, Measured
from randhet.attack.settings import ProtocolConfig
from randhet.deploy.predictors import emulator_predictor, lava_predictor
from randhet.network import ExportedNetwork


def run_protocol(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ProtocolConfig,
    deployed: ExportedNetwork | None = None,
    progress: bool = True,
    transfer_source: torch.nn.Module | None = None,
    cache: UnitCache | None = None,
) -> RobustnessResult:
    """Run the ensemble at every eps with its budget ladder, score it on every target and
    compute the flags.

    ``deployed``: the exported network (the emulator target, Square on the emulator and the
    Lava spot check); ``transfer_source``: the model the transfer input is crafted on (default:
    the sigma = 0 twin of the same weights). Every unit is seeded from ``cfg.seed`` and its
    identity, so under torchrun each rank takes every N-th chunk and the gathered result is
    the one a single process computes; with a ``cache`` finished units are kept on disk and
    an interrupted run resumes to the same result.
    """
    t0 = time.perf_counter()
    engine = Engine(model, x, y, cfg, deployed, transfer_source)
    measured = engine.compute(cache, progress)
    lava = None
    if "lava" in cfg.targets and deployed is not None and dist.world().main:
        lava = _lava_spot_check(engine, measured, deployed)
    return build_result(engine, measured, time.perf_counter() - t0, dist.world().size, lava)


def _lava_spot_check(engine: Engine, m: Measured, deployed: ExportedNetwork
                     ) -> LavaSpotCheck | None:
    """The chosen inputs of chunk 0 at the largest attacked eps below 1 through Lava and the
    emulator with the same draw."""
    cfg = engine.cfg
    positive = [i for i, e in enumerate(engine.eps) if 0 < e < 1 and e in cfg.eps]
    if not positive:
        return None
    ei = positive[-1]
    state = m.states[UnitKey(ei, m.last_level[ei], 0)]
    n = min(cfg.lava_spot_samples, len(state.chosen))
    xs = torch.as_tensor(state.chosen[:n])
    ys = engine.y[engine.chunks[0]][:n].numpy()
    seed = dist.chunk_seed(cfg.seed, SCORE, ei, 0)
    lava = lava_predictor(deployed)(xs, seed)
    emu = emulator_predictor(deployed)(xs, seed)
    return LavaSpotCheck(n, engine.eps[ei], float((lava == emu).mean()),
                         float((lava == ys).mean()), float((emu == ys).mean()))


__all__ = ["run_protocol"]
