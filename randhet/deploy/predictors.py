"""Predictions of the deployed network for the robustness stage: each call is one fresh draw.

``x`` are pixels (e.g. adversarial inputs crafted on the torch model); they are encoded by the
deployed model's encoder (rate coding seeded by the call's seed), then run with that draw's
per-sample decays (:func:`~randhet.decays.deployment_draws` with the same seed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.result import RunResult
from randhet.models.base import Predict
from randhet.models.exported import encode_integers, model_from_export
from randhet.network import ExportedNetwork


def _predictor(net: ExportedNetwork, run: Callable[..., RunResult]) -> Predict:
    model = model_from_export(net)

    def predict(x: torch.Tensor, seed: int) -> np.ndarray:
        inputs = encode_integers(model, x, seed)
        result = run(net, inputs, deployment_draws(net, len(x), seed))
        return result.rasters[-1].sum(-1).reshape(len(x), -1).argmax(1)

    return predict


def emulator_predictor(net: ExportedNetwork) -> Predict:
    """Labels predicted by the emulated deployment (output spike counts, argmax)."""
    return _predictor(net, emulate)


def lava_predictor(net: ExportedNetwork) -> Predict:
    """Labels predicted by the Lava deployment (slow: use it on a small spot-check set)."""
    from randhet.deploy.lava_backend import run_lava  # Lava is imported on first use only

    return _predictor(net, run_lava)
