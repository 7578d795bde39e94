"""The torch (SLAYER) model of an exported network, and the decays a deployment uses.

The torch model with the file's integers is the reference a deployment must match bit for bit;
:func:`deployment_draws` gives the per-sample decays both run with.
"""

from __future__ import annotations

import numpy as np
import torch

from randhet.decays import DecayDraw, draw_network
from randhet.export.netx import ExportedNetwork
from randhet.spec import DECAY_SCALE, WEIGHT_SCALE
from randhet.train.model import SpikingNetwork


def model_from_export(net: ExportedNetwork) -> SpikingNetwork:
    """A SpikingNetwork whose weights, mean decays and threshold are the file's integers."""
    model = SpikingNetwork(net.spec)
    with torch.no_grad():
        for block, layer in zip(model.blocks, net.layers, strict=True):
            w = torch.as_tensor(layer.weight, dtype=torch.float32) / WEIGHT_SCALE
            block.synapse.weight.copy_(w.reshape(block.synapse.weight.shape))
            block.neuron.mean_current_decay.fill_(layer.current_decay / DECAY_SCALE)
            block.neuron.mean_voltage_decay.fill_(layer.voltage_decay / DECAY_SCALE)
            if round(block.neuron.threshold * WEIGHT_SCALE) != layer.threshold_mant:
                raise ValueError("threshold in the file differs from the spec")
    model.eval()
    return model


def deployment_draws(net: ExportedNetwork, samples: int, seed: int) -> list[DecayDraw]:
    """Per-layer integer decays for ``samples`` samples, as the deployed network draws them.

    ``forward``: one draw per sample; ``step``: one per sample and step; ``fixed``: the frozen
    draw stored in the file, the same for every sample. Layout [S, *noise_shape(, T)].
    """
    neuron = net.spec.neuron
    if neuron.resample == "fixed":
        out = []
        for layer in net.layers:
            cur = torch.as_tensor(layer.fixed_current, dtype=torch.float64)
            vol = torch.as_tensor(layer.fixed_voltage, dtype=torch.float64)
            out.append(DecayDraw(cur.expand(samples, *cur.shape).clone(),
                                 vol.expand(samples, *vol.shape).clone()))
        return out
    steps = net.spec.encoding.timesteps
    means = [(layer.current_decay, layer.voltage_decay) for layer in net.layers]
    shapes = [layer.shape for layer in net.layers]
    return draw_network(neuron, samples, shapes, seed, steps, means)


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
