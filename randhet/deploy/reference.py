"""The torch (SLAYER) model of an exported network: the reference a deployment must match."""

from __future__ import annotations

import numpy as np
import torch

from randhet.decays import DecayDraw
from randhet.export.netx import ExportedNetwork
from randhet.spec import WEIGHT_SCALE
from randhet.train.model import SpikingNetwork


def model_from_export(net: ExportedNetwork) -> SpikingNetwork:
    """A SpikingNetwork whose weights, decays and threshold are the file's integers."""
    model = SpikingNetwork(net.spec)
    with torch.no_grad():
        for block, layer in zip(model.blocks, net.layers, strict=True):
            w = torch.as_tensor(layer.weight, dtype=torch.float32) / WEIGHT_SCALE
            block.synapse.weight.copy_(w.reshape(block.synapse.weight.shape))
            block.neuron.current_decay.fill_(layer.current_decay)
            block.neuron.voltage_decay.fill_(layer.voltage_decay)
            if round(block.neuron.threshold * WEIGHT_SCALE) != layer.threshold_mant:
                raise ValueError("threshold in the file differs from the spec")
    model.eval()
    return model


@torch.no_grad()
def reference_rasters(
    model: SpikingNetwork,
    inputs: np.ndarray,
    current_decays: list[np.ndarray],
    voltage_decays: list[np.ndarray],
    batch_size: int = 256,
) -> list[np.ndarray]:
    """Spike rasters [S, n, T] (bool) per layer for integer inputs and given integer decays."""
    scale = float(1 << model.spec.encoding.input_shift)
    outs: list[list[np.ndarray]] = [[] for _ in model.blocks]
    for i in range(0, len(inputs), batch_size):
        x = torch.as_tensor(inputs[i:i + batch_size], dtype=torch.float32) / scale
        draws = [
            DecayDraw(
                torch.as_tensor(du[i:i + batch_size], dtype=torch.float64),
                torch.as_tensor(dv[i:i + batch_size], dtype=torch.float64),
            )
            for du, dv in zip(current_decays, voltage_decays, strict=True)
        ]
        for k, s in enumerate(model.run_encoded(x, draws)):
            outs[k].append(s.numpy() > 0)
    return [np.concatenate(o) for o in outs]
