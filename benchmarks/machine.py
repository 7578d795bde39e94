"""What every benchmark records beside its numbers: the machine, its load and the versions."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def machine() -> dict[str, Any]:
    """Date, CPUs (all and usable), processor and its model, platform, Python and library
    versions, torch's intra-op threads and the load average."""
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
