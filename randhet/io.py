"""Atomic file writes: a run interrupted at any moment leaves the previous file intact."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write (by name, e.g. with h5py); it replaces
    ``path`` when the block ends normally and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 is for secrets, not results
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic(path: Path, write: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()


def write_text(path: str | Path, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_torch(path: str | Path, obj: Any) -> None:
    _atomic(Path(path), lambda f: torch.save(obj, f))


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (for the record in every report)."""
    from importlib.metadata import PackageNotFoundError, version  # only when a report is written

    out = {}
    for pkg in ("randhet", "lava-nc", "lava-dl", "torch", "numpy", "torchattacks"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


RUNS = Path("runs")  # where the command line puts a folder that no --out names


def default_folder(name: str, kind: str = "") -> Path:
    """A new folder under ``runs/`` for the config named ``name``: a run (train, run) or,
    with ``kind``, a grid (``runs/NAME-compare``, ``runs/NAME-flex-compare``)."""
    return RUNS / (f"{name}-{kind}" if kind else name)


def results_folder(out_dir: str | Path | None, default: str | Path) -> Path:
    """Where a stage writes its results: ``out_dir`` when one is given, else ``default``
    (the run folder for attack and analyze, the network file's folder for deploy and
    profile)."""
    return Path(out_dir) if out_dir else Path(default)
