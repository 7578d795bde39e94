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
from randhet.models.spiking import SpikingNetwork
from randhet.network import ExportedNetwork
from randhet.readout import decide


def output_counts(net: ExportedNetwork, model: SpikingNetwork, x: torch.Tensor, seed: int,
                  run: Callable[..., RunResult] = emulate) -> np.ndarray:
    """Output spike counts [B, classes] of the deployment ``run`` (the emulator by default) for
    pixels x: encoded by ``model`` (the deployed model's encoder, rate coding from ``seed``),
    run with the per-sample decays :func:`~randhet.decays.deployment_draws` gives ``seed``."""
    inputs = encode_integers(model, x.detach(), seed)
    result = run(net, inputs, deployment_draws(net, len(x), seed))
    return result.rasters[-1].sum(-1).reshape(len(x), -1)


def _predictor(net: ExportedNetwork, run: Callable[..., RunResult]) -> Predict:
    model = model_from_export(net)

    def predict(x: torch.Tensor, seed: int) -> np.ndarray:
        return decide(output_counts(net, model, x, seed, run))

    return predict


class DeployedScores(torch.nn.Module):
    """The deployed network (emulated, integer, no gradient) as a module of class scores:
    ``forward(x)`` gives output spike counts [B, classes] (float) for pixels x, every call a
    fresh draw of decays (and rate coding) seeded from ``generator``, as a torch model draws
    from its own. What a gradient-free attack needs to attack the chip's arithmetic itself."""

    def __init__(self, net: ExportedNetwork) -> None:
        super().__init__()
        self.net = net
        self.model = model_from_export(net)
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        return torch.as_tensor(output_counts(self.net, self.model, x, seed), dtype=torch.float32)


def emulator_predictor(net: ExportedNetwork) -> Predict:
    """Labels predicted by the emulated deployment (output spike counts,
    :func:`randhet.readout.decide`: a tie or a silent output is no label)."""
    return _predictor(net, emulate)


def lava_predictor(net: ExportedNetwork) -> Predict:
    """Labels predicted by the Lava deployment (slow: use it on a small spot-check set)."""
    from randhet.deploy.lava_backend import run_lava  # Lava is imported on first use only

    return _predictor(net, run_lava)
