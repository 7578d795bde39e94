"""Atomic file writes: a run interrupted at any moment leaves the previous file intact."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_torch(path: str | Path, obj: Any) -> None:
    _atomic(Path(path), lambda f: torch.save(obj, f))


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (for the record in every report)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("randhet", "lava-nc", "lava-dl", "torch", "numpy", "torchattacks"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
