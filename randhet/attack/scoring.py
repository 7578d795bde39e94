"""Scoring a stochastic network: accuracy over R fresh draws, its spread, and worst case.

A randomized network's accuracy is a random variable. Each input is scored R times with fresh
randomness: ``mean``/``std`` are over the R per-draw accuracies; ``worst_case`` is the fraction
of inputs classified correctly on every draw. A predictor takes the draw's *seed*, which fixes
all of that draw's randomness, so a set of inputs scored in pieces (by several processes) gives
the same numbers as scored whole when each piece is given its own seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from randhet.models.base import EVAL_BATCH, Predict


@dataclass(frozen=True)
class Score:
    mean: float  # mean over draws of the accuracy
    std: float  # std over draws of the accuracy
    worst_case: float  # fraction correct on every draw
    draws: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def of(cls, correct: np.ndarray) -> Score:
        """From a [R draws, B inputs] boolean matrix of correct predictions."""
        per_draw = correct.mean(1)
        return cls(float(per_draw.mean()), float(per_draw.std()), float(correct.all(0).mean()),
                   len(correct))


def correct_matrix(predict: Predict, x: torch.Tensor, y: torch.Tensor, seed: int, draws: int
                   ) -> np.ndarray:
    """[draws, B] booleans: input b classified correctly by draw r (seed ``seed + r``)."""
    return np.stack([predict(x, seed + r) == y.numpy() for r in range(draws)])


def score(predict: Predict, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int = 0
          ) -> Score:
    """Score inputs ``x`` with ``draws`` fresh draws (seeds ``seed .. seed + draws - 1``)."""
    return Score.of(correct_matrix(predict, x, y, seed, draws))


def torch_predictor(model: torch.nn.Module, batch_size: int = EVAL_BATCH) -> Predict:
    """Predictions of the torch model; the call's seed seeds its decay draws and rate coding
    (the model's generator)."""

    @torch.no_grad()
    def predict(x: torch.Tensor, seed: int) -> np.ndarray:
        model.eval()
        model.generator.manual_seed(seed)
        out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
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
