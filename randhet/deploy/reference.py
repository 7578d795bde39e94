"""The reference rasters a deployment must match bit for bit: the torch (SLAYER) model of the
exported network (:func:`~randhet.models.exported.model_from_export`) run on the same integer
inputs and decay draws (:func:`~randhet.decays.deployment_draws`)."""

from __future__ import annotations

import numpy as np
import torch

from randhet.decays import DecayDraw
from randhet.models.spiking import SpikingNetwork


@torch.no_grad()
def reference_rasters(
    model: SpikingNetwork,
    inputs: np.ndarray,
    draws: list[DecayDraw],
    batch_size: int = 128,
) -> list[np.ndarray]:
    """Spike rasters [S, *shape, T] (bool) per spiking layer for integer inputs and decays."""
    scale = float(1 << model.spec.encoding.input_shift)
    outs: list[list[np.ndarray]] = [[] for _ in model.blocks]
    for i in range(0, len(inputs), batch_size):
        x = torch.as_tensor(inputs[i:i + batch_size], dtype=torch.float32) / scale
        part = [DecayDraw(d.current[i:i + batch_size], d.voltage[i:i + batch_size])
                for d in draws]
        for k, s in enumerate(model.run_encoded(x, part)):
            outs[k].append(s.numpy() > 0)
    return [np.concatenate(o) for o in outs]
