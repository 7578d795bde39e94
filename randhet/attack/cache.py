"""Completed units of a robustness run on disk, so an interrupted run resumes where it stopped.

The protocol's work comes in seeded units (one attack at one eps on one chunk, the convergence
check on one chunk, ...); a unit's result depends only on its identity and the run's inputs, so
a unit computed before an interruption is as good as one computed now. Each finished unit is
written atomically as ``<folder>/<unit>.json``; the folder's ``fingerprint.json`` records what
the results depend on (protocol settings, network and sample digests), and a folder whose
fingerprint differs is emptied instead of reused. Under torchrun every rank writes its own
units into the same (shared) folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from randhet import distributed as dist
from randhet.io import write_json

FINGERPRINT = "fingerprint.json"


def digest(*parts: bytes) -> str:
    """sha256 of the concatenated bytes (hex, 16 characters)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == bool:
        return {"bool_matrix": value.astype(np.uint8).tolist()}
    if isinstance(value, np.ndarray):
        return {"int_matrix": value.astype(np.int64).tolist()}
    return {"value": value}


def _decode(value: dict[str, Any]) -> Any:
    if "bool_matrix" in value:
        return np.asarray(value["bool_matrix"], dtype=bool)
    if "int_matrix" in value:
        return np.asarray(value["int_matrix"], dtype=np.int64)
    return value["value"]


class UnitCache:
    """Per-unit results in ``folder`` for a run with the given ``fingerprint``."""

    def __init__(self, folder: str | Path, fingerprint: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # plain JSON types
        self.reused = 0
        if dist.world().main:
            stored = self.folder / FINGERPRINT
            if stored.is_file() and json.loads(stored.read_text()) != self.fingerprint:
                shutil.rmtree(self.folder)  # results of other settings or another network
            if not (self.folder / FINGERPRINT).is_file():
                write_json(self.folder / FINGERPRINT, self.fingerprint)
        dist.barrier()

    def _path(self, unit: str) -> Path:
        return self.folder / f"{unit}.json"

    def load(self, unit: str) -> dict[tuple[Any, ...], Any] | None:
        """The unit's entries if it finished before, else None (also for an unreadable file)."""
        path = self._path(unit)
        if not path.is_file():
            return None
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        self.reused += 1
        return {tuple(key): _decode(value) for key, value in rows}

    def save(self, unit: str, entries: dict[tuple[Any, ...], Any]) -> None:
        write_json(self._path(unit), [[list(k), _encode(v)] for k, v in entries.items()])

    def remove(self) -> None:
        """Delete the folder (rank 0, after every rank is done with it)."""
        dist.barrier()
        if dist.world().main:
            shutil.rmtree(self.folder, ignore_errors=True)
