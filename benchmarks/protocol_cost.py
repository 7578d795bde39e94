"""What a config's full robustness protocol would cost on this machine: every member's step
timed on one chunk, then counted over the protocol's ladder. An extrapolation from measured
step times, not a measured run.

Run by hand (not a test)::

    .venv/bin/python benchmarks/protocol_cost.py                       # configs/mnist.toml
    .venv/bin/python benchmarks/protocol_cost.py --data-root DIR       # real MNIST files
    .venv/bin/python benchmarks/protocol_cost.py --config configs/digits.toml

Without ``--data-root`` an MNIST-format config reads the embedded digits scaled up to 28x28 and
written as IDX files (as ``docs/tutorials/your-data.md`` does), because this project's machines
have no MNIST files: the same shapes and layout, other images. The script trains the config's
network for ``--epochs`` epochs (step times hardly depend on its accuracy) and exports it.

Timed, with the config's ``[attack]`` table, on one chunk of ``batch_size`` test samples
(median of ``--repeats`` calls after a warm-up), at 1 torch thread and at torch's default
count, in a process that keeps its freed memory as the command line does:

- one gradient step (the EOT loss and its input gradient) for every (readout, surrogate) the
  ensemble crosses, at ``eot`` and at ``2 eot`` draws (the ladder doubles it);
- one Square query (``square_draws`` fresh draws) on the torch model and on the emulator;
- one scoring pass (one draw, no gradient) on the torch model and on the emulator.

Counted per chunk, eps and budget level (``ProtocolConfig.budget``), as ``Engine.unit`` runs
them: APGD and PGD ``(steps + 1) x restarts`` gradient steps per member, FGSM one, Square
``square_steps x restarts`` queries (on the emulator at the first level only), NES
``nes_steps x restarts`` steps of ``2 nes_samples`` one-draw probes and a ``square_draws``
check (a probe timed as a Square query over its draws), each member's
input scored on ``draws`` and chosen on ``selection_draws`` torch draws, the chosen input
scored on every target's ``draws``. A step's time at ``k`` times the draws is interpolated
linearly between the two measured EOT counts. Not counted: the controls, the transfer member,
the gradient checks, the Lava spot check, process start. Reported: the first level over all
eps, and the ladder to ``doublings`` (the least a converging eps runs) and to
``max_doublings`` (the cap) over all eps but eps = 1, which the ladder stops at once when its
accuracy is 0 (counted at the first level).

Writes ``benchmarks/results/protocol_cost.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.allocator import keep_freed_memory
from randhet.attack.base import Attack, attacker_surrogate
from randhet.attack.members import ensemble_members
from randhet.attack.settings import GRADIENT, ProtocolConfig, parse_surrogate
from randhet.config import load_config, protocol_config
from randhet.data import idx
from randhet.data.datasets import load_digits_arrays
from randhet.deploy.predictors import DeployedScores
from randhet.export import export_run
from randhet.network import read_network
from randhet.runs import open_run
from randhet.train.trainer import train

RESULTS = harness.RESULTS / "protocol_cost.json"
CONFIG = harness.ROOT / "configs" / "mnist.toml"


def write_digits_as_idx(root: Path) -> Path:
    """The embedded digits, scaled 4x and cropped to 28x28, as MNIST's four IDX files (the
    names and magic numbers :mod:`randhet.data.idx` reads)."""
    pixels, target = load_digits_arrays()  # [N, 1, 8, 8] in [0, 1]
    images = np.kron(pixels[:, 0], np.ones((4, 4)))[:, 2:2 + idx.SIDE, 2:2 + idx.SIDE]
    images = np.round(images * 255).astype(np.uint8)
    labels = target.astype(np.uint8)
    for split, sl in (("train", slice(0, 1500)), ("test", slice(1500, None))):
        x, y = images[sl], labels[sl]
        image_file, label_file = idx.FILES[split]
        with gzip.open(root / f"{image_file}.gz", "wb") as f:
            f.write(struct.pack(">4I", idx.IMAGE_MAGIC, len(x), idx.SIDE, idx.SIDE) + x.tobytes())
        with gzip.open(root / f"{label_file}.gz", "wb") as f:
            f.write(struct.pack(">2I", idx.LABEL_MAGIC, len(y)) + y.tobytes())
    return root


def call_s(fn: Any, repeats: int) -> float:
    """Seconds of one call of ``fn``: the harness's median over ``repeats`` after a warm-up."""
    return harness.time_calls(fn, repeats, warmup=1)[1]


def step_times(model: torch.nn.Module, deployed: DeployedScores, cfg: ProtocolConfig,
               x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds per call on one chunk: ``grad:READOUT:SURROGATE:EOT``, ``square:torch``,
    ``square:emulator``, ``score:torch``, ``score:emulator``."""
    out: dict[str, float] = {}
    crossed = {(m.readout, m.surrogate) for m in ensemble_members(cfg, model, True)
               if m.attack in GRADIENT or m.attack == "fgsm"}
    for readout, surrogate in sorted(crossed):
        for eot in (cfg.eot, 2 * cfg.eot):
            attack = Attack(model, eps=0.1, eot=eot, readout=readout)
            with attacker_surrogate(model, parse_surrogate(surrogate)):
                out[f"grad:{readout}:{surrogate}:{eot}"] = call_s(
                    lambda a=attack: a.loss_and_grad(x, y), repeats)
    reps = x.repeat(cfg.square_draws, *([1] * (x.dim() - 1)))
    with torch.no_grad():
        out["square:torch"] = call_s(lambda: model(reps), repeats)
        out["score:torch"] = call_s(lambda: model(x), repeats)
    out["square:emulator"] = call_s(lambda: deployed(reps), repeats)
    out["score:emulator"] = call_s(lambda: deployed(x), repeats)
    return out


def grad_s(times: dict[str, float], readout: str, surrogate: str, eot: int, base: int) -> float:
    """A gradient step at ``eot`` draws, linear between the measured ``base`` and ``2 base``."""
    t1, t2 = (times[f"grad:{readout}:{surrogate}:{k}"] for k in (base, 2 * base))
    return t1 + (t2 - t1) * (eot - base) / base


def unit_s(cfg: ProtocolConfig, times: dict[str, float], level: int,
           members: tuple[Any, ...], targets: tuple[str, ...]) -> float:
    """One chunk at one eps > 0 and budget ``level``: seconds, as counted in the docstring."""
    b = cfg.budget(level)
    total = 0.0
    for m in members:
        if m.attack == "square":
            if m.target == "emulator" and level > 0:
                continue
            scale = b.square_draws / cfg.square_draws  # a query's draws, linear
            total += b.square_steps * b.restarts * times[f"square:{m.target}"] * scale
        elif m.attack == "nes":
            per_draw = times["square:torch"] / cfg.square_draws
            queries = b.nes_steps * b.restarts * (2 * b.nes_samples + b.square_draws)
            total += queries * per_draw
        else:
            step = grad_s(times, m.readout, m.surrogate, b.eot, cfg.eot)
            total += step if m.attack == "fgsm" else (b.steps + 1) * b.restarts * step
        total += (cfg.draws + cfg.selection_draws) * times["score:torch"]
    for t in targets:
        total += cfg.draws * times["score:emulator" if t in ("emulator", "lava")
                                   else "score:torch"]
    return total


def estimate(cfg: ProtocolConfig, times: dict[str, float], members: tuple[Any, ...]
             ) -> dict[str, Any]:
    chunks = math.ceil(cfg.samples / cfg.batch_size)
    eps = [e for e in cfg.eps if e > 0]
    levels = {lv: chunks * unit_s(cfg, times, lv, members, cfg.targets)
              for lv in range(cfg.max_doublings + 1)}
    first = levels[0] * (len(eps) + 1)  # + the eps = 1 check
    return {
        "chunks": chunks, "eps": eps, "seconds_per_eps_by_level": levels,
        "first_level_s": first,
        "to_doublings_s": levels[0] + sum(levels[lv] for lv in range(cfg.doublings + 1))
        * len(eps),
        "to_max_doublings_s": levels[0] + sum(levels.values()) * len(eps),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--data-root", type=Path, help="MNIST-format files (default: digits as IDX)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    keep_freed_memory()
    load_start = harness.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"train.epochs={args.epochs}"]
        cfg = load_config(args.config)
        data_note = "the config's data"
        if cfg["data"]["dataset"] in ("mnist", "fashion_mnist"):
            root = args.data_root or write_digits_as_idx(Path(tmp))
            overrides.append(f"data.root={root}")
            data_note = (f"{root}" if args.data_root else
                         "embedded digits scaled to 28x28, written as IDX (no MNIST files here)")
        cfg = load_config(args.config, overrides)
        protocol = protocol_config(cfg)
        run = Path(tmp) / "run"
        train(cfg, run, progress=False)
        net = export_run(run)
        opened = open_run(run)
        model, data = opened.model().eval(), opened.data()
        x = torch.as_tensor(data.x_test[:protocol.batch_size])
        y = torch.as_tensor(data.y_test[:protocol.batch_size])
        deployed = DeployedScores(read_network(net))
        members = ensemble_members(protocol, model, True)
        runs = []
        for threads in sorted({1, torch.get_num_threads()}):
            torch.set_num_threads(threads)
            times = step_times(model, deployed, protocol, x, y, args.repeats)
            runs.append({"threads": threads, "step_seconds": times,
                         "estimate": estimate(protocol, times, members)})
    result = {
        "benchmark": "protocol_cost", "machine": harness.machine(), "loadavg_start": load_start,
        "loadavg_end": harness.loadavg(), "config": str(args.config), "data": data_note,
        "kind": "extrapolation from measured step times, not a measured run",
        "protocol": dataclasses.asdict(protocol), "members": [m.name for m in members],
        "chunk_samples": len(x), "runs": runs,
    }
    harness.write_json(RESULTS, result)
    for r in runs:
        e = r["estimate"]
        print(f"{r['threads']} thread(s): first level {e['first_level_s'] / 3600:.1f} h; to "
              f"{protocol.doublings} doublings {e['to_doublings_s'] / 3600:.1f} h; to "
              f"{protocol.max_doublings} {e['to_max_doublings_s'] / 3600:.1f} h")


if __name__ == "__main__":
    main()
