"""Nothing lost when training is interrupted: the checkpoint (every rank's generators too),
putting it back, the config check of ``--resume``, and Ctrl-C or SIGTERM taken between batches."""

from __future__ import annotations

import signal
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from randhet import distributed as dist
from randhet import schema
from randhet.config import ADDED_DEFAULTS, dump_toml
from randhet.errors import ConfigError, UserError
from randhet.train.state import TrainState, cpu_state

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def checkpoint_state(state: TrainState, cfg: dict[str, Any]) -> dict[str, Any]:
    """The resumable training state (plain tensors, numbers, strings: loads with
    ``torch.load(weights_only=True)``).

    Keys: ``format``, ``epoch`` (completed), ``config`` (TOML text), ``model``, ``optimizer``,
    ``scheduler`` (state dicts), ``best`` (epoch, val_accuracy, val_loss), ``best_model``
    (state dict), ``log`` (the rows so far) and ``rng``: ``model`` (the model's CPU generator,
    decay draws and rate coding), ``order`` (numpy PCG64 state of the shuffling, a dict of
    ints), ``torch`` (global CPU RNG) and ``cuda`` (per-device RNGs, empty without CUDA).
    Distributed runs add ``ranks``: every rank's ``model``, ``torch`` and ``cuda`` states, in
    rank order (a collective: call it on every rank).
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    ranks = dist.all_gather({"model": state.model.generator.get_state(),
                             "torch": torch.get_rng_state(), "cuda": cuda})
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": state.epoch,
        "config": dump_toml(cfg),
        "model": cpu_state(state.model),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "best": dict(state.best),
        "best_model": state.best_model,
        "log": [dict(r) for r in state.rows],
        "rng": {
            "model": state.model.generator.get_state(),
            "order": state.order_rng.bit_generator.state,
            "torch": torch.get_rng_state(),
            "cuda": cuda,
            "ranks": ranks if len(ranks) > 1 else [],
        },
    }

def restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Put a :func:`checkpoint_state` back into freshly built training objects."""
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    # the schedule may have grown (train.epochs): recompute this epoch's lr from it
    lr = [b * state.scheduler.lr_lambdas[0](state.scheduler.last_epoch)
          for b in state.scheduler.base_lrs]
    for group, value in zip(state.optimizer.param_groups, lr, strict=True):
        group["lr"] = value
    state.rows = [dict(r) for r in ckpt["log"]]
    state.best = dict(ckpt["best"])
    state.best_model = ckpt["best_model"]
    state.saved_epoch = int(ckpt["epoch"])
    rng = ckpt["rng"]
    state.order_rng.bit_generator.state = rng["order"]
    world = dist.world()
    ranks = rng.get("ranks") or [{k: rng[k] for k in ("model", "torch", "cuda")}]
    if len(ranks) != world.size and world.main:
        print(f"randhet: warning: the checkpoint was written by {len(ranks)} process(es), this "
              f"run has {world.size}: ranks without a saved state start fresh generators, so "
              "draws differ from an uninterrupted run", file=sys.stderr)
    if world.rank < len(ranks):
        mine = ranks[world.rank]
        state.model.generator.set_state(mine["model"])
        torch.set_rng_state(mine["torch"])
        if mine["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(mine["cuda"])

def _flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out

def check_resume_config(cfg: dict[str, Any], out: Path) -> None:
    """Refuse (ConfigError) a config that differs from the run's ``config.toml`` in anything
    but a larger ``train.epochs``."""
    path = out / "config.toml"
    if not path.is_file():
        raise ConfigError(f"cannot resume {out}: no config.toml there")
    now = _flatten(tomllib.loads(dump_toml(cfg)))
    saved = schema.with_added(_flatten(tomllib.loads(path.read_text())), now, ADDED_DEFAULTS)
    for key in sorted(saved.keys() | now.keys()):
        old, new = saved.get(key, "<missing>"), now.get(key, "<missing>")
        if old == new or (key == "train.epochs" and isinstance(old, int) and isinstance(new, int)
                           and new >= old):
            continue
        raise ConfigError(
            f"cannot resume {out}: '{key}' is {new!r} but the run was trained with {old!r} "
            "(only train.epochs may change, and only grow)"
        )

def load_checkpoint(out: Path) -> dict[str, Any]:
    """``out/checkpoint.pt`` on the CPU; UserError when missing or unreadable."""
    path = out / CHECKPOINT
    if not path.is_file():
        raise UserError(f"cannot resume: no checkpoint at {path} (train without --resume)")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # truncated, corrupt or not a checkpoint at all
        raise UserError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"cannot resume: {path} is not a randhet checkpoint (format 1)")
    return ckpt

@contextmanager
def interrupt_at_safe_points() -> Iterator[Callable[[], None]]:
    """Ctrl-C and SIGTERM while active: the first one is noted and raised as KeyboardInterrupt
    by the yielded ``check()``, which training calls between batches; a second one raises at
    once. An interrupt raised in the middle of library code (a progress bar half built, a
    file half written) leaves broken objects behind; between batches there are none. Main
    thread only (elsewhere ``check`` does nothing); the handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    pending: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        pending.append(signum)
        if len(pending) > 1:  # asked twice: do not wait for the batch to end
            raise KeyboardInterrupt

    def check() -> None:
        if pending:
            raise KeyboardInterrupt

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, handler) for s in signals]
    try:
        yield check
    finally:
        for s, h in zip(signals, previous, strict=True):
            signal.signal(s, h)

def report_interrupt(out: Path, state: TrainState) -> None:
    if not dist.world().main:
        return
    saved = state.saved_epoch
    if (out / CHECKPOINT).is_file():  # the signal may land between the write and the update
        try:
            saved = int(load_checkpoint(out)["epoch"])
        except UserError:
            pass
    if saved:
        print(f"randhet: training interrupted; {out / CHECKPOINT} holds epoch "
              f"{saved}: run the same command with --resume (--out {out}) "
              "to continue", file=sys.stderr)
    else:
        print("randhet: training interrupted before the first epoch completed; "
              "nothing to resume", file=sys.stderr)
