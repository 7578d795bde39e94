"""The decision rule: which class an output says, written once for every accuracy randhet reports.

A spiking network's output is a spike count per class. ``argmax`` gives a tie to the lowest class
index, so a sample whose top count is shared, or that has no output spike at all, would quietly
count as class 0 (or as whichever tied class comes first). Here such an output decides nothing:

- **tie**: two or more classes share the top score (and some output is nonzero): :data:`TIE`;
- **silent**: every output is exactly zero (no output spike): :data:`SILENT`;
- otherwise the class with the unique top score.

A tie or a silent output never equals a label, so it is always wrong, whichever label is true.
The same rule applies to an ANN's logits (a silent output there means all logits are 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

DECISION_RULE = ("the class with the unique top output spike count; a tie at the top or an "
                 "output with no spike decides nothing and counts as wrong")
TIE = -1  # the top score is shared by two or more classes
SILENT = -2  # no output at all (every score is zero)

Scores = TypeVar("Scores", np.ndarray, torch.Tensor)


def decide(scores: Scores) -> Scores:
    """Labels [...] (int64) for scores [..., classes]: the unique top class, :data:`TIE` or
    :data:`SILENT`."""
    if isinstance(scores, torch.Tensor):
        top = scores.max(-1, keepdim=True).values
        shared = (scores == top).sum(-1) > 1
        silent = (scores == 0).all(-1)
        label = scores.argmax(-1)
        return torch.where(silent, SILENT, torch.where(shared, TIE, label))
    scores = np.asarray(scores)
    top = scores.max(-1, keepdims=True)
    shared = (scores == top).sum(-1) > 1
    silent = (scores == 0).all(-1)
    label = scores.argmax(-1).astype(np.int64)
    return np.where(silent, SILENT, np.where(shared, TIE, label)).astype(np.int64)


@dataclass(frozen=True)
class Decisions:
    """How a set of outputs decided: ``accuracy`` (unique top class = label), ``tie_rate`` and
    ``silent_rate`` (fractions of outputs that decided nothing; both count as wrong)."""

    accuracy: float
    tie_rate: float
    silent_rate: float

    @classmethod
    def of(cls, predicted: np.ndarray, labels: np.ndarray) -> Decisions:
        """From predicted labels (any shape, :func:`decide`'s codes) and the true labels
        (broadcast against them)."""
        p = np.asarray(predicted)
        if p.size == 0:
            return cls(float("nan"), float("nan"), float("nan"))
        return cls(float((p == np.asarray(labels)).mean()), float((p == TIE).mean()),
                   float((p == SILENT).mean()))


def correct_count(scores: torch.Tensor, labels: torch.Tensor) -> int:
    """How many outputs decide their label (a tie or silence is wrong)."""
    return int((decide(scores.detach()) == labels).sum().item())
