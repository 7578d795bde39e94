"""MNIST / Fashion-MNIST in the IDX format (big-endian header, then uint8 payload), numpy only."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from randhet.errors import ConfigError, DataError

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
SIDE = 28  # pixels per row and column
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED = ", ".join(f for pair in FILES.values() for f in pair) + " (each optionally .gz)"


def _find(root: Path, name: str) -> Path:
    for path in (root / name, root / f"{name}.gz"):
        if path.is_file():
            return path
    raise ConfigError(f"{root}: missing {name} (or {name}.gz); expected {EXPECTED}")


def _read(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({e}); expected an IDX file, raw or gzipped") from e


def read_idx_images(path: Path) -> np.ndarray:
    """Images of an IDX3 file as uint8 [N, rows, cols] (raw pixel values 0..255)."""
    raw = _read(path)
    if len(raw) < 16:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected 16)")
    magic, n, rows, cols = struct.unpack(">4I", raw[:16])
    if magic != IMAGE_MAGIC:
        raise DataError(f"{path}: magic number {magic}, expected {IMAGE_MAGIC} (IDX images)")
    if rows == 0 or cols == 0:
        raise DataError(f"{path}: image size {rows}x{cols}, expected positive dimensions")
    if len(raw) - 16 != n * rows * cols:
        raise DataError(
            f"{path}: payload is {len(raw) - 16} bytes, header says {n}x{rows}x{cols} = "
            f"{n * rows * cols}"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """Labels of an IDX1 file as int64 [N], each checked to lie in 0..9."""
    raw = _read(path)
    if len(raw) < 8:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected 8)")
    magic, n = struct.unpack(">2I", raw[:8])
    if magic != LABEL_MAGIC:
        raise DataError(f"{path}: magic number {magic}, expected {LABEL_MAGIC} (IDX labels)")
    if len(raw) - 8 != n:
        raise DataError(f"{path}: payload is {len(raw) - 8} bytes, header says {n} labels")
    y = np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)
    if y.size and y.max() > 9:
        raise DataError(f"{path}: label {int(y.max())} found, expected labels 0..9")
    return y


def load_idx_dataset(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "test": (x, y)}``: x uint8 [N, 28, 28], y int64 [N] in 0..9."""
    if not root.is_dir():
        raise ConfigError(f"data.root '{root}' is not a folder; it should hold {EXPECTED}")
    out = {}
    for split, (img_name, lbl_name) in FILES.items():
        img_path, lbl_path = _find(root, img_name), _find(root, lbl_name)
        x, y = read_idx_images(img_path), read_idx_labels(lbl_path)
        if x.shape[1:] != (SIDE, SIDE):
            raise DataError(
                f"{img_path}: images are {x.shape[1]}x{x.shape[2]}, expected {SIDE}x{SIDE}"
            )
        if len(x) != len(y):
            raise DataError(f"{lbl_path}: {len(y)} labels for {len(x)} images in {img_path.name}")
        out[split] = (x, y)
    return out
