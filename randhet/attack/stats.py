"""The protocol's statistics over samples: a bootstrap interval for an accuracy and a paired,
one-sided test of whether a larger attack budget lowered it.

Both work on per-sample outcomes (a sample's accuracy over the common scoring draws), so the
spread they measure is the one over the attacked samples, where most of the uncertainty is
(100 samples: about +-0.1 at 95 %).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 10000


def bootstrap_interval(per_sample: np.ndarray, level: float = 0.95, seed: int = 0
                       ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``per_sample`` values (resampling
    samples, :data:`RESAMPLES` times, from ``seed``)."""
    v = np.asarray(per_sample, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (RESAMPLES, v.size))].mean(1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(lo), float(hi)


def paired_fall(before: np.ndarray, after: np.ndarray, margin: float = 0.0, seed: int = 0
                ) -> tuple[float, float]:
    """How much ``after`` lies below ``before`` (per-sample outcomes of the same samples on
    the same scoring draws) and the one-sided p-value of "it fell by at most ``margin``": the
    mean difference, and the share of centred bootstrap means at least ``fall - margin``
    above zero (plus one, over resamples plus one). Identical outcomes give a fall of 0 and
    p = 1."""
    d = np.asarray(before, dtype=np.float64) - np.asarray(after, dtype=np.float64)
    fall = float(d.mean()) if d.size else 0.0
    if d.size == 0 or not d.any():
        return fall, 1.0
    rng = np.random.default_rng(seed)
    centred = (d - fall)[rng.integers(0, d.size, (RESAMPLES, d.size))].mean(1)
    return fall, float((1 + np.count_nonzero(centred >= fall - margin)) / (RESAMPLES + 1))
