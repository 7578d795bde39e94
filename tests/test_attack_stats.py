"""The protocol's statistics: the bootstrap interval covers the mean with the spread of the
samples, and the paired one-sided test of a budget doubling can fail and can pass."""

from __future__ import annotations

import numpy as np

from randhet.attack.settings import ProtocolConfig
from randhet.attack.stats import bootstrap_interval, paired_fall


def test_interval_has_the_width_of_100_samples() -> None:
    outcomes = np.r_[np.ones(50), np.zeros(50)]
    lo, hi = bootstrap_interval(outcomes)
    assert lo < 0.5 < hi and 0.17 < hi - lo < 0.23  # about +-0.1 at 95 %
    assert bootstrap_interval(np.ones(30)) == (1.0, 1.0)


def test_a_steady_fall_is_significant_and_none_is_not() -> None:
    rng = np.random.default_rng(0)
    before = rng.uniform(0, 1, 100)
    after = before.copy()
    after[:6] = 0.0  # 6 samples broken by the larger budget: a fall of about 3 points
    fall, p = paired_fall(before, after)
    assert fall > 0.02 and p < 0.05
    assert paired_fall(before, before) == (0.0, 1.0)
    noise = before + rng.normal(0, 0.05, 100)  # no fall, only scoring noise either way
    assert paired_fall(before, noise)[1] > 0.05
    rising = before + 0.05  # the larger budget did worse: no fall, p near 1
    assert paired_fall(before, rising)[1] > 0.9


def test_budget_ladder_doubles_restarts_steps_and_eot_in_turn() -> None:
    cfg = ProtocolConfig(steps=10, restarts=1, eot=4, square_steps=100, square_draws=2)
    rungs = [cfg.budget(k) for k in range(5)]
    assert [(b.restarts, b.steps, b.eot) for b in rungs] == [
        (1, 10, 4), (2, 10, 4), (2, 20, 4), (2, 20, 8), (4, 20, 8)]
    assert [b.doubled for b in rungs] == ["", "restarts", "steps", "eot", "restarts"]
    assert [b.square_steps for b in rungs] == [100, 100, 200, 200, 200]
    assert [b.square_draws for b in rungs] == [2, 2, 2, 4, 4]
    assert [(b.nes_steps, b.nes_samples) for b in rungs] == [
        (100, 64), (100, 64), (200, 64), (200, 128), (200, 128)]


def test_a_fall_within_the_margin_passes() -> None:
    before = np.r_[np.ones(50), np.zeros(50)]
    after = before.copy()
    after[:2] = 0.0  # 2 points lower
    assert paired_fall(before, after, margin=0.0)[1] < 0.5
    assert paired_fall(before, after, margin=0.02)[1] > 0.05  # within the margin: no evidence
    after[:10] = 0.0  # 10 points lower: beyond a 1-point margin, clearly
    assert paired_fall(before, after, margin=0.01)[1] < 0.01
