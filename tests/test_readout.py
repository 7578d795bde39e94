"""The decision rule: a tie at the top or a silent output decides nothing and is wrong."""

from __future__ import annotations

import numpy as np
import torch

from randhet.attack.scoring import Score, score
from randhet.readout import SILENT, TIE, Decisions, correct_count, decide


def test_ties_and_silence_decide_nothing_in_numpy_and_torch() -> None:
    counts = [[0, 3, 1], [2, 2, 0], [0, 0, 0], [5, 1, 5], [0, 0, 1]]
    expected = [1, TIE, SILENT, TIE, 2]
    assert decide(np.array(counts)).tolist() == expected
    assert decide(torch.tensor(counts)).tolist() == expected
    assert decide(torch.tensor(counts, dtype=torch.float32)).tolist() == expected


def test_a_tie_that_includes_the_label_is_wrong() -> None:
    counts = torch.tensor([[2, 2, 0], [0, 0, 0], [1, 4, 0]])
    labels = torch.tensor([0, 0, 1])
    assert (counts.argmax(1) == labels).sum() == 3  # argmax would count all three
    assert correct_count(counts, labels) == 1
    d = Decisions.of(decide(counts.numpy()), labels.numpy())
    assert d == Decisions(accuracy=1 / 3, tie_rate=1 / 3, silent_rate=1 / 3)


def test_scores_report_tie_and_silent_rates() -> None:
    y = torch.tensor([0, 1])
    answers = [[0, TIE], [SILENT, 1]]
    s = score(lambda x, r: np.array(answers[r]), torch.zeros(2, 1), y, 2)
    assert s == Score(mean=0.5, std=0.0, worst_case=0.0, draws=2, tie_rate=0.25,
                      silent_rate=0.25)
