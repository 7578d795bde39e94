"""One schema for every TOML table randhet reads: a frozen dataclass is its own schema.

A field's annotation gives the value's type (``bool``, ``int``, ``float``, ``str``, a
``Literal`` of choices, ``tuple[X, ...]`` / ``list[X]`` lists, ``dict[str, X]`` tables, a nested
dataclass for a sub-table, ``X | None`` for a value that may be :data:`UNKNOWN`); its
:func:`key` metadata gives the one-line doc, choices, inclusive bounds and special kinds; its
default is the key's default (no default: required). :func:`merge` checks a table's keys onto
a base table, :func:`build` makes the dataclass, :func:`keys` lists every key for the docs.
Every error is one line that names the key (``name(path)``), raised as the caller's class.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, Literal, TypeVar, get_args, get_origin

UNKNOWN = "unknown"  # an optional value may say so explicitly (the same as leaving it out)

T = TypeVar("T")
Namer = Callable[[str], str]


@dataclass(frozen=True)
class KeyDoc:
    """One key of a schema, for the reference docs."""

    key: str  # dotted: "neuron.sigma", "core.neurons_per_core"
    kind: str  # readable type: "number", "list of strings", "integer or \"unknown\""
    default: Any  # JSON-able default; None where the key is required (or unknown by default)
    allowed: str  # readable choices or bounds, "" if any value of the type goes
    doc: str  # one line


def key(doc: str, default: Any = MISSING, *, choices: tuple[Any, ...] | None = None,
        min: float | None = None, max: float | None = None, above: float | None = None,
        kind: str | None = None, nonempty: bool = False, item: str = "value",
        hints: dict[str, str] | None = None, added: bool = False) -> Any:
    """A schema field: ``doc`` (one line), ``default`` (none: required), ``choices``, inclusive
    ``min``/``max`` and exclusive ``above`` bounds (of each item for lists), ``kind`` (``range``:
    ``[low, high]`` integers with low < 0 < high; ``interval``: 0 <= low <= high; ``table``:
    ``{integer >= 1 = number >= 0}``), ``nonempty`` (strings, lists, tables), ``item`` (what a
    list holds, for messages) and ``hints`` (text added when a given bad item is named).
    ``added``: the key came after results were saved, and its default computes what was
    computed before it existed, so a saved table without it counts as having the default
    (:func:`added_defaults`)."""
    meta = {"doc": doc, "choices": choices, "min": min, "max": max, "above": above,
            "kind": kind, "nonempty": nonempty, "item": item, "hints": hints or {},
            "added": added}
    return field(default=default, metadata=meta)


def internal(default: Any = MISSING, *, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field that is not a table key (set by the code, never by a user)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"internal": True})
    return field(default=default, metadata={"internal": True})


def quoted(path: str) -> str:
    """The default way to name a key in a message: ``'neuron.sigma'``."""
    return f"'{path}'"


# --- types ----------------------------------------------------------------------------------


@cache
def _schema(cls: type) -> dict[str, tuple[Field[Any], Any]]:
    """The table keys of a dataclass: name -> (field, resolved annotation)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in fields(cls) if not f.metadata.get("internal")}


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(annotation without ``| None``, whether it had it)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) < len(get_args(tp)) and len(args) == 1:
            return args[0], True
    return tp, False


def _table_type(tp: Any) -> type | None:
    base, _ = _unwrap(tp)
    return base if isinstance(base, type) and is_dataclass(base) else None


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _kind_text(tp: Any, meta: Mapping[str, Any]) -> str:
    base, optional = _unwrap(tp)
    special = {"range": "[low, high] integers", "interval": "[low, high] integers",
               "table": "table of integer = number"}
    text = special.get(meta.get("kind") or "") or _type_text(base)
    return f'{text} or "{UNKNOWN}"' if optional else text


def _type_text(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "string"
    if origin in (tuple, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"list of {len(args)} {_type_text(args[0])}s"
        return f"list of {_type_text(args[0])}s"
    if origin is dict:
        return f"table of {_type_text(args[1])}s"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds_text(meta: Mapping[str, Any]) -> str:
    lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
    if lo is not None and hi is not None:
        return f"[{_num(lo)}, {_num(hi)}]"
    if lo is not None:
        return f">= {_num(lo)}"
    if above is not None:
        return f"> {_num(above)}"
    return f"<= {_num(hi)}" if hi is not None else ""


def _bounds_phrase(meta: Mapping[str, Any]) -> str:
    text = _bounds_text(meta)
    return f"in {text}" if text.startswith("[") else text


def _allowed_text(tp: Any, meta: Mapping[str, Any]) -> str:
    base, _ = _unwrap(tp)
    special = {"range": "low < 0 < high", "interval": "0 <= low <= high",
               "table": "keys >= 1, values >= 0"}
    if meta.get("kind") in special:
        return special[meta["kind"]]
    choices = _choices(base, meta)
    parts = [f"one of {', '.join(map(str, choices))}" if choices else _bounds_text(meta)]
    if get_origin(base) in (tuple, list, dict) and parts[0]:
        parts[0] = f"each {parts[0]}"
    if meta.get("nonempty"):
        parts.insert(0, "non-empty")
    return "; ".join(p for p in parts if p)


def _choices(tp: Any, meta: Mapping[str, Any]) -> tuple[Any, ...]:
    if meta.get("choices"):
        return tuple(meta["choices"])
    item = get_args(tp)[0] if get_origin(tp) in (tuple, list) else tp
    return get_args(item) if get_origin(item) is Literal else ()


# --- values -----------------------------------------------------------------------------------


def _scalar(tp: Any, value: Any, where: str, error: type[Exception],
            meta: Mapping[str, Any]) -> Any:
    """One value of a scalar type (``Literal`` included), its choices and bounds checked."""
    if get_origin(tp) is Literal:
        tp = type(get_args(tp)[0])
    ok = isinstance(value, tp) and (tp is bool or not isinstance(value, bool))
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise error(f"{where} must be a finite number; got {value!r}")
        value = float(value) if ok else value
    if not ok:
        raise error(f"{where} must be of type {_NAMES.get(tp, tp.__name__)}; got {value!r}")
    if tp is str and meta.get("nonempty") and not value.strip():
        raise error(f"{where} must be a non-empty string; got {value!r}")
    return value


def _in_bounds(value: Any, meta: Mapping[str, Any]) -> bool:
    lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
    return ((lo is None or value >= lo) and (hi is None or value <= hi)
            and (above is None or value > above))


def _check(tp: Any, meta: Mapping[str, Any], value: Any, path: str, name: Namer,
           error: type[Exception]) -> Any:
    """A checked value of one key in table form (lists for sequences), or None (unknown)."""
    where = name(path)
    base, optional = _unwrap(tp)
    if optional and (value is None or value == UNKNOWN):
        return None
    kind = meta.get("kind")
    if kind in ("range", "interval"):
        pair = (isinstance(value, list | tuple) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if kind == "range":
            if not pair:
                raise error(f"{where} must be a list of two integers [low, high]; got {value!r}")
            if not value[0] < 0 < value[1]:
                raise error(f"{where} must satisfy low < 0 < high; got {value!r}")
        elif not pair or not 0 <= value[0] <= value[1]:
            raise error(f"{where} must be [low, high] with 0 <= low <= high integers; "
                        f"got {value!r}")
        return [value[0], value[1]]
    if kind == "table":  # {tiles = value}: integer keys >= 1, finite values >= 0
        if not isinstance(value, Mapping) or not value:
            raise error(f"{where} must be a non-empty table {{key = number}}")
        out = {}
        for k, v in value.items():
            if (not str(k).isdigit() or int(k) < 1 or isinstance(v, bool)
                    or not isinstance(v, int | float) or not math.isfinite(v) or v < 0):
                raise error(f"{where} must map integers >= 1 to numbers >= 0; got {k} = {v!r}")
            out[int(k)] = float(v)
        return out
    origin, args = get_origin(base), get_args(base)
    if origin is dict:
        if not isinstance(value, Mapping) or (meta.get("nonempty") and not value):
            raise error(f"{where} must be a{' non-empty' if meta.get('nonempty') else ''} "
                        f"table of {_type_text(args[1])}s")
        return {k: _scalar(args[1], v, name(f"{path}.{k}"), error, meta)
                for k, v in value.items()}
    if origin in (tuple, list):
        return _sequence(base, meta, value, where, error)
    value = _scalar(base, value, where, error, meta)
    choices = _choices(base, meta)
    if choices and value not in choices:
        raise error(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
    if not _in_bounds(value, meta):
        raise error(f"{where} must be {_bounds_phrase(meta)}; got {value!r}")
    return value


def _sequence(tp: Any, meta: Mapping[str, Any], value: Any, where: str,
              error: type[Exception]) -> list[Any]:
    args = get_args(tp)
    variadic = get_origin(tp) is list or (len(args) == 2 and args[1] is Ellipsis)
    if not isinstance(value, list | tuple):
        raise error(f"{where} must be of type {_type_text(tp)}; got {value!r}")
    if not variadic and len(value) != len(args):
        raise error(f"{where} must be a list of {len(args)} values; got {value!r}")
    items = [_scalar(args[0] if variadic else args[i], v, f"{where} items", error, {})
             for i, v in enumerate(value)]
    if meta.get("nonempty") and not items:
        raise error(f"{where}: none given")
    choices = _choices(tp, meta)
    bad = [v for v in items if choices and v not in choices]
    if bad:
        hints = meta.get("hints") or {}
        hint = "".join(dict.fromkeys(hints[v] for v in bad if v in hints))
        raise error(f"{where}: unknown {meta.get('item', 'value')} {', '.join(map(repr, bad))} "
                    f"(available: {', '.join(map(str, choices))}){hint}")
    out = [v for v in items if not _in_bounds(v, meta)]
    if out:
        raise error(f"{where} items must be {_bounds_phrase(meta)}; got {out[0]!r}")
    return items


# --- tables -----------------------------------------------------------------------------------


def merge(cls: type, base: Mapping[str, Any], new: Mapping[str, Any], *,
          error: type[Exception], name: Namer = quoted, unknown: Namer | None = None,
          prefix: str = "") -> dict[str, Any]:
    """``base`` (a table of ``cls``) with the keys of ``new`` checked and set (sub-tables
    merged key by key); a new dict in table form (lists, nested dicts). ``name(path)`` names a
    key in a message, ``unknown(path)`` is the message for a key ``cls`` lacks."""
    out = dict(base)
    known = _schema(cls)
    for k, value in new.items():
        path = f"{prefix}{k}"
        if k not in known:
            raise error(unknown(path) if unknown else f"{name(path)} is not a known key")
        f, tp = known[k]
        sub = _table_type(tp)
        if sub is not None:
            if not isinstance(value, Mapping):
                raise error(f"{name(path)} must be a table")
            out[k] = merge(sub, base.get(k) or {}, value, error=error, name=name,
                           unknown=unknown, prefix=f"{path}.")
        else:
            out[k] = _check(tp, f.metadata, value, path, name, error)
    return out


def build(cls: type[T], table: Mapping[str, Any], *, error: type[Exception],
          name: Namer = quoted, prefix: str = "", extra: Mapping[str, Any] | None = None) -> T:
    """The dataclass of a merged table: defaults fill what it lacks, lists become tuples where
    the annotation says so; ``extra`` sets non-table fields. ``error`` names a missing key."""
    kwargs: dict[str, Any] = dict(extra or {})
    for k, (f, tp) in _schema(cls).items():
        path = f"{prefix}{k}"
        if k not in table:
            if _required(f):
                raise error(f"{name(path)} is missing")
            continue
        value, sub = table[k], _table_type(tp)
        if sub is not None and isinstance(value, Mapping):
            value = build(sub, value, error=error, name=name, prefix=f"{path}.")
        elif isinstance(value, list) and get_origin(_unwrap(tp)[0]) is tuple:
            value = tuple(value)
        kwargs[k] = value
    return cls(**kwargs)


def load(cls: type[T], table: Mapping[str, Any], *, error: type[Exception],
         name: Namer = quoted, unknown: Namer | None = None, prefix: str = "",
         extra: Mapping[str, Any] | None = None) -> T:
    """:func:`merge` onto nothing, then :func:`build`."""
    merged = merge(cls, {}, table, error=error, name=name, unknown=unknown, prefix=prefix)
    return build(cls, merged, error=error, name=name, prefix=prefix, extra=extra)


def to_table(obj: Any) -> dict[str, Any]:
    """A dataclass's table keys as TOML/JSON-ready values (lists, nested dicts; None left out)."""
    out: dict[str, Any] = {}
    for k in _schema(type(obj)):
        value = _plain(getattr(obj, k))
        if value is not None:
            out[k] = value
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_table(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def defaults(cls: type) -> dict[str, Any]:
    """The table of a dataclass whose every key has a default."""
    return to_table(cls())


def added_defaults(cls: type) -> dict[str, Any]:
    """The defaults of the keys marked ``added`` (:func:`key`) in ``cls``'s table and its
    sub-tables, by key name (the last part of a dotted path)."""
    out: dict[str, Any] = {}
    for k, (f, tp) in _schema(cls).items():
        sub = _table_type(tp)
        if sub is not None:
            out.update(added_defaults(sub))
        elif f.metadata.get("added"):
            out[k] = _plain(f.default)
    return out


def with_added(saved: Mapping[str, Any], now: Mapping[str, Any], added: Mapping[str, Any]
               ) -> dict[str, Any]:
    """``saved`` (a flat dict of dotted keys) with every key that ``now`` has and it lacks
    set to the default in ``added`` where its name is there (:func:`added_defaults`): what a
    saved result computed before those keys existed had."""
    out = dict(saved)
    for k in now.keys() - saved.keys():
        name = k.rsplit(".", 1)[-1]
        if name in added:
            out[k] = added[name]
    return out


def keys(cls: type, prefix: str = "") -> list[KeyDoc]:
    """Every key of ``cls``'s table (sub-tables' keys dotted), in field order."""
    out: list[KeyDoc] = []
    for k, (f, tp) in _schema(cls).items():
        sub = _table_type(tp)
        if sub is not None:
            out += keys(sub, f"{prefix}{k}.")
            continue
        if f.default is not MISSING:
            default = _plain(f.default)
        elif f.default_factory is not MISSING:
            default = _plain(f.default_factory())
        else:
            default = None
        out.append(KeyDoc(f"{prefix}{k}", _kind_text(tp, f.metadata), default,
                          _allowed_text(tp, f.metadata), f.metadata.get("doc", "")))
    return out
