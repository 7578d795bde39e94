"""Data loading. The embedded default is scikit-learn's handwritten digits (8x8, 1797 images).

Nothing is downloaded: real data sets (later issues) are read from a folder the user names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from randhet.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """Images in [0, 1] (float32, [N, *shape]) and integer labels, split three ways."""

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
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images [1797, 8, 8] in [0, 1] (pixel / 16) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def load_dataset(data_cfg: dict[str, Any]) -> Splits:
    """Load and split the data set a config's ``[data]`` table names."""
    name = data_cfg["dataset"]
    if name == "digits":
        x, y = load_digits_arrays()
        num_classes = 10
    else:
        raise ConfigError(f"unknown data set {name!r} (available: digits)")
    tr, va, te = stratified_split(
        y, data_cfg["val_fraction"], data_cfg["test_fraction"], data_cfg["split_seed"]
    )
    return Splits(x[tr], y[tr], x[va], y[va], x[te], y[te], num_classes, name)
