"""N-MNIST event files (Orchard et al. 2015): ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin``.

Each event is 5 bytes: x (0..33), y (0..33), then bit 7 = polarity (1 = on) and a 23-bit
timestamp in microseconds, ``((b2 & 0x7F) << 16) | (b3 << 8) | b4``. As in the data set's own
reader, an event with y == 240 is a timestamp-overflow marker: it adds 2**13 us to every later
timestamp and is not itself an event.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from randhet.errors import ConfigError, DataError

SIDE = 34  # sensor pixels per row and column
SPLITS = {"train": "Train", "test": "Test"}
EXPECTED = "Train/ and Test/ folders, each with subfolders 0..9 of N-MNIST .bin event files"
_OVERFLOW_Y = 240
_OVERFLOW_US = 1 << 13


def list_nmnist(root: Path) -> dict[str, tuple[list[Path], np.ndarray]]:
    """``{"train": (files, y), "test": (files, y)}``: sorted .bin paths and int64 labels [N]."""
    if not root.is_dir():
        raise ConfigError(f"data.root '{root}' is not a folder; it should hold {EXPECTED}")
    out = {}
    for split, folder_name in SPLITS.items():
        paths: list[Path] = []
        labels: list[int] = []
        for digit in range(10):
            folder = root / folder_name / str(digit)
            if not folder.is_dir():
                raise ConfigError(f"{root}: missing {folder_name}/{digit}/; expected {EXPECTED}")
            found = sorted(folder.glob("*.bin"))
            paths += found
            labels += [digit] * len(found)
        if not paths:
            raise ConfigError(f"{root / folder_name}: no .bin files; expected {EXPECTED}")
        out[split] = (paths, np.asarray(labels, np.int64))
    return out


def read_events(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events of one file as int64 arrays (x, y, polarity 0/1, timestamp in us), markers removed."""
    raw = np.fromfile(path, np.uint8)
    if raw.size % 5:
        raise DataError(f"{path}: {raw.size} bytes, expected a multiple of 5 (40-bit events)")
    ev = raw.reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    ts = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    marker = y == _OVERFLOW_Y
    ts = ts + _OVERFLOW_US * np.cumsum(marker)
    keep = ~marker
    x, y, p, ts = x[keep], y[keep], ev[keep, 2] >> 7, ts[keep]
    if x.size and (x.max() >= SIDE or y.max() >= SIDE):
        raise DataError(f"{path}: event at x={x.max()}, y={y.max()}, expected x and y < {SIDE}")
    return x, y, p, ts


def event_frames(path: Path, timesteps: int) -> np.ndarray:
    """One sample as float32 [2, 34, 34, T]: ``[polarity, y, x, bin]`` = 1.0 if any event, else 0.

    Binning: with ``t_last`` the sample's largest timestamp (us), an event at ``ts`` falls in bin
    ``floor(ts * T / (t_last + 1))``, i.e. T equal bins of ``(t_last + 1) / T`` us covering
    [0, t_last]. A file with no events gives all zeros.
    """
    x, y, p, ts = read_events(path)
    frames = np.zeros((2, SIDE, SIDE, timesteps), np.float32)
    if ts.size:
        frames[p, y, x, ts * timesteps // (int(ts.max()) + 1)] = 1.0
    return frames


def read_frames(paths: list[Path], timesteps: int) -> np.ndarray:
    """Samples as float32 [N, 2, 34, 34, T] (see :func:`event_frames`)."""
    if timesteps < 1:
        raise ConfigError(f"N-MNIST needs at least one time bin, got timesteps={timesteps}")
    out = np.zeros((len(paths), 2, SIDE, SIDE, timesteps), np.float32)
    for i, path in enumerate(paths):
        out[i] = event_frames(path, timesteps)
    return out
