"""Multi-process runs on torch.distributed (launched by ``torchrun``), and the single-process
case as a world of one.

``torchrun --nproc-per-node N -m randhet COMMAND ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`session` joins the process group
(gloo for CPU tensors; with CUDA also NCCL for GPU tensors, device ``cuda:LOCAL_RANK``) and
leaves it. Everything else here works unchanged in a plain single process (rank 0 of 1): the
collectives return their input, so callers never branch on "distributed or not".

Conventions used across randhet:

- rank 0 alone writes files and prints; every rank computes;
- a sharded evaluation splits its work into fixed *chunks* whose randomness is seeded from the
  chunk's identity (:func:`chunk_seed`), not from the rank, so N processes produce exactly the
  numbers one process produces;
- training draws (decays, rate coding) are independent per rank: rank r seeds its generator
  with :func:`rank_seed` (rank 0 keeps the configured seed, so a 1-process run is unchanged).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from randhet.errors import UserError

T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)  # how long a rank waits for the others at a collective


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the rank that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched() -> bool:
    """True when the environment describes a torchrun-launched process of a world > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world() -> World:
    """This process's place in the job (a world of one when no process group is active)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def backend() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors when GPUs are present."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


@contextmanager
def session() -> Iterator[World]:
    """Join the torchrun process group for the duration (a no-op outside torchrun).

    On ranks other than 0, stdout is silenced (rank 0 prints the results); errors still reach
    stderr, prefixed by the launcher."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield world()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend(), timeout=TIMEOUT)
    dist.barrier()  # every rank is up, and the connections exist before any timed work
    w = world()
    saved = sys.stdout
    if not w.main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    try:
        yield w
        # every rank done with its collectives before any tears its connections down: a rank
        # destroying gloo's pairs while a peer still uses them can abort the process
        dist.barrier()
    finally:
        if not w.main:
            sys.stdout.close()
            sys.stdout = saved
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The generator seed of ``rank`` in a training job seeded ``seed``: ``seed`` itself on
    rank 0, an independent stream (numpy SeedSequence of (seed, rank)) on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0]) >> 1


def chunk_seed(seed: int, *key: int) -> int:
    """A seed for one unit of sharded work, from the run's seed and the unit's identity (e.g.
    attack index, eps index, chunk index): the same on whichever rank does the work."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1, np.uint64)[0]) >> 1


def my_chunks(count: int, w: World | None = None) -> list[int]:
    """The chunk indices (of ``count``) this rank works on: round robin."""
    w = w or world()
    return list(range(w.rank, count, w.size))


def shard(n: int, w: World | None = None) -> slice:
    """This rank's contiguous share of ``n`` items (sizes differ by at most one)."""
    w = w or world()
    bounds = np.linspace(0, n, w.size + 1).round().astype(int)
    return slice(int(bounds[w.rank]), int(bounds[w.rank + 1]))


def all_sum(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks (float64), the same on every rank."""
    t = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if world().distributed:
        dist.all_reduce(t)
    return t.numpy()


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over ranks (a new tensor; ``t`` itself in a single process)."""
    if not world().distributed:
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out / world().size


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    w = world()
    if not w.distributed:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def gather_chunks(local: dict[Any, T]) -> dict[Any, T]:
    """Merge every rank's ``{unit key: result}`` (keys distinct across ranks) into one dict on
    every rank."""
    merged: dict[Any, T] = {}
    for part in all_gather(local):
        merged.update(part)
    return merged


def barrier() -> None:
    if world().distributed:
        dist.barrier()


def refuse(what: str) -> None:
    """Raise UserError when running under torchrun with more than one process."""
    if world().distributed:
        raise UserError(f"{what} does not run distributed: launch it without torchrun "
                        "(or with --nproc-per-node 1)")
