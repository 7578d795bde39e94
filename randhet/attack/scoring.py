"""Scoring a stochastic network: accuracy over R fresh draws, its spread, and worst case.

A randomized network's accuracy is a random variable. Each input is scored R times with fresh
randomness: ``mean``/``std`` are over the R per-draw accuracies; ``worst_case`` is the fraction
of inputs classified correctly on every draw; ``tie_rate``/``silent_rate`` the fractions of
(draw, input) outputs that decided nothing (:mod:`randhet.readout`: a tie at the top or no
output spike, both wrong). A predictor takes the draw's *seed*, which fixes
all of that draw's randomness, so a set of inputs scored in pieces (by several processes) gives
the same numbers as scored whole when each piece is given its own seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from randhet.models.base import EVAL_BATCH, Predict
from randhet.readout import Decisions, decide


@dataclass(frozen=True)
class Score:
    mean: float  # mean over draws of the accuracy
    std: float  # std over draws of the accuracy
    worst_case: float  # fraction correct on every draw
    draws: int
    tie_rate: float = 0.0  # fraction of (draw, input) outputs with a shared top count
    silent_rate: float = 0.0  # fraction of (draw, input) outputs with no spike

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def of(cls, predicted: np.ndarray, labels: np.ndarray) -> Score:
        """From a [R draws, B inputs] matrix of predicted labels (:func:`decide`'s codes) and
        the B true labels."""
        correct = predicted == np.asarray(labels)[None]
        per_draw = correct.mean(1)
        rates = Decisions.of(predicted, labels[None])
        return cls(float(per_draw.mean()), float(per_draw.std()), float(correct.all(0).mean()),
                   len(correct), rates.tie_rate, rates.silent_rate)


def prediction_matrix(predict: Predict, x: torch.Tensor, seed: int, draws: int) -> np.ndarray:
    """[draws, B] int64: the label draw r gives input b (seed ``seed + r``;
    :data:`randhet.readout.TIE` or :data:`~randhet.readout.SILENT` where the output decides
    nothing)."""
    return np.stack([np.asarray(predict(x, seed + r), dtype=np.int64) for r in range(draws)])


def score(predict: Predict, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int = 0
          ) -> Score:
    """Score inputs ``x`` with ``draws`` fresh draws (seeds ``seed .. seed + draws - 1``)."""
    return Score.of(prediction_matrix(predict, x, seed, draws), y.numpy())


def torch_predictor(model: torch.nn.Module, batch_size: int = EVAL_BATCH) -> Predict:
    """Predictions of the torch model; the call's seed seeds its decay draws and rate coding
    (the model's generator)."""

    @torch.no_grad()
    def predict(x: torch.Tensor, seed: int) -> np.ndarray:
        model.eval()
        model.generator.manual_seed(seed)
        out = [decide(model(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy()

    return predict


def auc(eps: list[float], accuracy: list[float]) -> float:
    """Area under accuracy(eps), trapezoidal on the actual eps values, normalised by the eps
    range (so 1.0 = accuracy 1 everywhere). The BioFlexNet code's eps_max/n spacing is wrong
    for n + 1 points; this uses the real spacing."""
    e = np.asarray(eps, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if len(e) < 2 or e[-1] == e[0]:
        return float(a.mean()) if len(a) else float("nan")
    return float(np.trapz(a, e) / (e[-1] - e[0]))
