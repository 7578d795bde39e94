"""Data loading. The embedded default is scikit-learn's handwritten digits (8x8, 1797 images);
MNIST, Fashion-MNIST, CIFAR-10 and N-MNIST are read from the folder ``data.root`` names.
Nothing is ever downloaded.

Array conventions (every split): images float32 in [0, 1], [N, C, H, W] (digits [N, 1, 8, 8] =
pixel / 16; MNIST and Fashion-MNIST [N, 1, 28, 28] = pixel / 255; CIFAR-10 [N, 3, 32, 32] =
pixel / 255, channels R, G, B). N-MNIST: float32 event frames [N, 2, 34, 34, T] indexed
``[polarity (0 off, 1 on), y, x, time bin]``, 1.0 where that pixel and polarity had at least one
event in the bin (binning: :func:`randhet.data.nmnist.event_frames`). Labels int64 [N].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from randhet.data import cifar, idx, nmnist
from randhet.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """Samples (float32, [N, *input_shape], see the module docstring) and int64 labels [N]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test), stratified by class, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test:n_test + n_val])
        parts[0].append(idx[n_test + n_val:])
    return tuple(  # type: ignore[return-value]
        rng.permutation(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64)
        for p in parts
    )


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images [1797, 1, 8, 8] in [0, 1] (pixel / 16) and int64 labels."""
    from sklearn.datasets import load_digits  # scikit-learn takes a second: digits only

    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target.astype(np.int64)


class Part(NamedTuple):
    """One official split: labels [N] now, float32 samples for chosen indices on demand."""

    y: np.ndarray
    read: Callable[[np.ndarray], np.ndarray]


class DataSet(NamedTuple):
    """``load(root, timesteps) -> (train, test)``; test None = split three ways (digits)."""

    load: Callable[[Path, int], tuple[Part, Part | None]]
    expected: str  # what ``data.root`` must hold ("" = embedded, no root needed)


def _pixels(x: np.ndarray, y: np.ndarray) -> Part:
    return Part(y, lambda i: x[i].astype(np.float32) / np.float32(255))


def _digits(root: Path, timesteps: int) -> tuple[Part, None]:
    x, y = load_digits_arrays()
    return Part(y, lambda i: x[i]), None


def _idx(root: Path, timesteps: int) -> tuple[Part, Part]:
    d = idx.load_idx_dataset(root)
    return _pixels(d["train"][0][:, None], d["train"][1]), _pixels(
        d["test"][0][:, None], d["test"][1]
    )


def _cifar10(root: Path, timesteps: int) -> tuple[Part, Part]:
    d = cifar.load_cifar10(root)
    return _pixels(*d["train"]), _pixels(*d["test"])


def _nmnist(root: Path, timesteps: int) -> tuple[Part, Part]:
    def part(paths: list[Path], y: np.ndarray) -> Part:
        return Part(y, lambda i: nmnist.read_frames([paths[k] for k in i], timesteps))

    d = nmnist.list_nmnist(root)
    return part(*d["train"]), part(*d["test"])


DATASETS: dict[str, DataSet] = {
    "digits": DataSet(_digits, ""),
    "mnist": DataSet(_idx, idx.EXPECTED),
    "fashion_mnist": DataSet(_idx, idx.EXPECTED),
    "cifar10": DataSet(_cifar10, cifar.EXPECTED),
    "nmnist": DataSet(_nmnist, nmnist.EXPECTED),
}


def load_dataset(data_cfg: dict[str, Any], *, timesteps: int = 16) -> Splits:
    """Load and split the data set a config's ``[data]`` table names.

    Digits: stratified train/val/test by ``val_fraction`` / ``test_fraction``. The others: the
    official test set is the test split and ``val_fraction`` of the official training set
    (stratified) the validation split. ``limit`` > 0 keeps at most that many samples per split,
    the first after a ``split_seed`` shuffle (N-MNIST then reads only those files).
    ``timesteps`` is the number of N-MNIST time bins (ignored by image data sets).
    """
    name = data_cfg["dataset"]
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r} (available: {', '.join(DATASETS)})")
    ds = DATASETS[name]
    root = str(data_cfg.get("root") or "").strip()
    if ds.expected and not root:
        raise ConfigError(
            f"data set {name!r} is read from disk: set 'data.root' to the folder holding "
            f"{ds.expected}"
        )
    seed, limit = int(data_cfg["split_seed"]), int(data_cfg.get("limit") or 0)
    train, test = ds.load(Path(root).expanduser(), timesteps)
    if test is None:
        test_fraction = float(data_cfg["test_fraction"])
        tr, va, te = stratified_split(train.y, data_cfg["val_fraction"], test_fraction, seed)
        test = train
    else:
        tr, va, _ = stratified_split(train.y, data_cfg["val_fraction"], 0.0, seed)
        te = np.random.default_rng(seed).permutation(len(test.y))
    if limit > 0:
        tr, va, te = tr[:limit], va[:limit], te[:limit]
    return Splits(
        train.read(tr), train.y[tr], train.read(va), train.y[va], test.read(te), test.y[te],
        10, name,
    )
