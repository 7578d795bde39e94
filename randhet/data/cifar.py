"""CIFAR-10, python version: pickled batches read by an unpickler that can build nothing but
plain containers and numpy arrays (no other global is ever imported, so no code runs)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from randhet.errors import ConfigError, DataError

SUBFOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
EXPECTED = f"data_batch_1 .. data_batch_5 and test_batch (directly or inside {SUBFOLDER}/)"


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused _codecs.encode call other than (str, 'latin1')")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes``: protocol-2 pickles spell b'' as ``bytes()``."""
    if args:
        raise pickle.UnpicklingError("refused bytes(...) call with arguments")
    return b""


# numpy's array reconstructor, found without importing numpy.core (renamed numpy._core in 2.x).
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 [N, 3, 32, 32] (channels R, G, B) and labels int64 [N]."""
    try:
        with path.open("rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except Exception as e:  # untrusted input: any failure means "not a CIFAR-10 batch"
        raise DataError(f"{path}: not a CIFAR-10 batch pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: pickle holds {type(obj).__name__}, expected a dict")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = d.get("data"), d.get("labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32):
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is {what}, expected a uint8 array [N, 3072]")
    y = np.asarray(labels) if isinstance(labels, list | np.ndarray) else None
    if y is None or y.ndim != 1 or len(y) != len(data) or (
        len(y) and not np.issubdtype(y.dtype, np.integer)
    ):
        raise DataError(f"{path}: 'labels' must be a list of {len(data)} ints")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: labels span {y.min()}..{y.max()}, expected 0..9")
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _folder(root: Path) -> Path:
    if not root.is_dir():
        raise ConfigError(f"data.root '{root}' is not a folder; it should hold {EXPECTED}")
    for folder in (root, root / SUBFOLDER):
        if (folder / TEST_FILE).is_file() or (folder / TRAIN_FILES[0]).is_file():
            missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (folder / n).is_file()]
            if missing:
                raise ConfigError(f"{folder}: missing {', '.join(missing)}; expected {EXPECTED}")
            return folder
    raise ConfigError(f"{root}: no CIFAR-10 batches found; expected {EXPECTED}")


def load_cifar10(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "test": (x, y)}``: x uint8 [N, 3, 32, 32], y int64 [N] in 0..9."""
    folder = _folder(root)
    train = [read_batch(folder / n) for n in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return {"train": (x_train, y_train), "test": (x_test, y_test)}
