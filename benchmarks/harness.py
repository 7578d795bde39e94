"""The one harness every benchmark script runs on (a module, not a script).

- Bootstrap: importing this module puts the repository root first on ``sys.path``, so that
  ``python benchmarks/<script>.py`` finds ``randhet`` in a checkout without installing it;
  :func:`bootstrap` adds further folders of the checkout (``tests`` for ``tests/sanafe_run.py``).
  A script imports ``harness`` before ``randhet`` (isort puts it there: a third-party name).
- Timing: :func:`interleaved` (variants in turn, round by round, after untimed warm-up rounds;
  wall and process CPU seconds), :func:`time_calls` (one function), :func:`timed` (one call),
  :func:`median` and :func:`iqr_over_median`.
- Records: :func:`machine` (date, CPUs, processor, platform, Python, torch, numpy, Lava and
  randhet versions, torch threads, load average) and :func:`loadavg` (at a run's start and end).
- Output: :func:`write_json`, the one writer of ``benchmarks/results/*.json``: indent 1, a
  trailing newline, written atomically (a run stopped mid-write leaves the old file).

Code that several scripts share lives in helper modules beside this one (no
``if __name__ == "__main__"``): ``training_steps.py``, ``deploy_nets.py``, ``nir_nets.py``.
No script imports another script (``tests/test_benchmarks_harness.py`` checks it).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
JSON_INDENT = 1

T = TypeVar("T")


def bootstrap(*folders: str) -> Path:
    """Put the repository root, then ``folders`` (relative to it), first on ``sys.path``
    (each once); the root."""
    for path in (ROOT, *(ROOT / f for f in folders)):
        if str(path) not in sys.path:  # run from a checkout without installing
            sys.path.insert(0, str(path))
    return ROOT


bootstrap()


# ---------------------------------------------------------------------------------------------
# timing


def median(values: list[float]) -> float:
    """The median (the mean of the two middle values of an even count)."""
    return statistics.median(values)


def iqr_over_median(values: list[float]) -> float:
    """Interquartile range over the median: how widely repeated timings spread."""
    q1, med, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / med


@dataclass
class Timings:
    """What :func:`interleaved` measured, per variant: the timed rounds' wall seconds and
    process CPU seconds, the last timed call's return value and the last warm-up call's."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    results: dict[str, Any] = field(default_factory=dict)
    warmup_results: dict[str, Any] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return median(self.wall[name])

    def medians(self) -> dict[str, float]:
        return {k: median(v) for k, v in self.wall.items()}

    def cpu_medians(self) -> dict[str, float]:
        return {k: median(v) for k, v in self.cpu.items()}


def interleaved(variants: Mapping[str, Callable[[], Any]], rounds: int, warmup: int,
                before: Callable[[str, int], None] | None = None) -> Timings:
    """Run every variant in turn, round by round, so that background load hits them alike:
    ``warmup`` untimed rounds, then ``rounds`` timed ones. ``before(name, round)`` runs
    untimed ahead of every call (round -1 in the warm-up): to seed, set threads or say what
    runs."""
    timings = Timings({k: [] for k in variants}, {k: [] for k in variants})
    for r in range(-warmup, rounds):
        for name, fn in variants.items():
            if before is not None:
                before(name, max(r, -1))
            c0, t0 = time.process_time(), time.perf_counter()
            out = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if r < 0:
                timings.warmup_results[name] = out
                continue
            timings.wall[name].append(wall)
            timings.cpu[name].append(cpu)
            timings.results[name] = out
    return timings


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int,
               before: Callable[[str, int], None] | None = None) -> tuple[list[float], float]:
    """``fn`` called ``warmup`` times untimed, then ``repeats`` times timed: the wall seconds
    of each timed call and their median."""
    t = interleaved({"fn": fn}, repeats, warmup, before)
    return t.wall["fn"], t.median("fn")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """One call of ``fn``: its wall seconds and what it returned."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------------------------------------
# machine and load records


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where /proc/loadavg is missing)."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def cpu_model() -> str | None:
    """The processor's model name (/proc/cpuinfo's first ``model name``; None where missing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


MACHINE_FIELDS = ("date", "cpu_count", "cpus_usable", "cpu", "cpu_model", "platform", "python",
                  "torch", "numpy", "torch_threads", "lava_nc", "lava_dl", "randhet",
                  "load_average")


def machine() -> dict[str, Any]:
    """Date, CPUs (all and usable), processor and its model, platform, Python and library
    versions, torch's intra-op threads and the load average (:data:`MACHINE_FIELDS`)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "cpus_usable": affinity,
        "cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
        "lava_nc": version("lava-nc"), "lava_dl": version("lava-dl"),
        "randhet": version("randhet"), "load_average": loadavg(),
    }


# ---------------------------------------------------------------------------------------------
# output


def dumps(data: Any) -> str:
    """``data`` as the results files hold it: JSON, indent 1, a trailing newline."""
    return json.dumps(data, indent=JSON_INDENT) + "\n"


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` (:func:`dumps`) to ``path`` atomically (randhet's own writer: a
    temporary file beside it replaces it once complete; its folder made if missing). The
    path."""
    from randhet.io import write_text  # after bootstrap(): the checkout's randhet

    text = dumps(data)  # serialise first: a failure leaves nothing behind
    write_text(path, text)
    return Path(path)
