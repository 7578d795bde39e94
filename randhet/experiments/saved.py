"""Results saved per run folder by the experiment grids (``cell.json``, ``variant.json``):
reused by a rerun only when computed with the same inputs, so an interrupted grid resumes and
a folder computed with another config is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from randhet import schema
from randhet.config import ADDED_DEFAULTS
from randhet.errors import ConfigError, UserError
from randhet.train.checkpoint import CHECKPOINT, check_resume_config
from randhet.train.state import TrainMetrics
from randhet.train.trainer import train


def jsonable(x: Any) -> Any:
    """``x`` as it reads back from JSON (tuples become lists), for comparing with a saved one."""
    return json.loads(json.dumps(x))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def check_same(path: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """UserError naming the first value that differs between a saved result and this run."""
    b = _flat(now)
    a = schema.with_added(_flat(saved), b, ADDED_DEFAULTS)
    for key in sorted(a.keys() | b.keys()):
        if a.get(key, "<missing>") != b.get(key, "<missing>"):
            raise UserError(f"{path} was computed with {key} = {a.get(key, '<missing>')!r}, "
                            f"this run has {b.get(key, '<missing>')!r}: use another --out")


def read_saved(path: Path, ident: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result at ``path`` when there is one (refused when its ``ident`` keys differ
    from this run's); None when there is none."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    check_same(path, {k: saved.get(k) for k in ident}, ident)
    return saved


def train_resuming(cfg: dict[str, Any], run: Path, progress: bool) -> TrainMetrics:
    """Train ``cfg`` into ``run``, continuing the checkpoint an interrupted training left there
    (refused in one line when that training had another config); the metrics."""
    resume = (run / CHECKPOINT).is_file()
    if resume:
        try:
            check_resume_config(cfg, run)
        except ConfigError as exc:
            raise UserError(f"{exc}; use another --out") from None
    return train(cfg, run, progress=progress, resume=resume)
