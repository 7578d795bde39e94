"""The torch model of an exported network: the reference a deployment must match bit for bit."""

from __future__ import annotations

import numpy as np
import torch

from randhet.errors import NetworkFileError
from randhet.models.spiking import SpikingNetwork
from randhet.network import ExportedNetwork
from randhet.spec import DECAY_SCALE, WEIGHT_SCALE


def model_from_export(net: ExportedNetwork) -> SpikingNetwork:
    """A SpikingNetwork whose weights, mean decays and threshold are the network's integers.

    A network whose layers disagree with its spec (weight shapes, threshold) is refused with a
    :class:`~randhet.errors.NetworkFileError` naming the file and layer."""
    model = SpikingNetwork(net.spec)
    if len(model.blocks) != len(net.layers):
        raise NetworkFileError(f"{net.path}: {len(net.layers)} spiking layers, the spec has "
                               f"{len(model.blocks)}")
    with torch.no_grad():
        for k, (block, layer) in enumerate(zip(model.blocks, net.layers, strict=True)):
            shape = tuple(block.synapse.weight.shape)
            if int(np.prod(shape)) != layer.weight.size:
                raise NetworkFileError(f"{net.path}: spiking layer {k} has weights of shape "
                                       f"{tuple(layer.weight.shape)}, its spec needs {shape}")
            if round(block.neuron.threshold * WEIGHT_SCALE) != layer.threshold_mant:
                raise NetworkFileError(
                    f"{net.path}: spiking layer {k} has threshold mantissa "
                    f"{layer.threshold_mant}, the spec says "
                    f"{round(block.neuron.threshold * WEIGHT_SCALE)}")
            w = torch.as_tensor(layer.weight, dtype=torch.float32) / WEIGHT_SCALE
            block.synapse.weight.copy_(w.reshape(shape))
            block.neuron.mean_current_decay.fill_(layer.current_decay / DECAY_SCALE)
            block.neuron.mean_voltage_decay.fill_(layer.voltage_decay / DECAY_SCALE)
            if layer.profile_binding is not None:
                block.neuron.bind(torch.as_tensor(layer.profile_binding))
    model.eval()
    return model


def encode_integers(model: SpikingNetwork, x: torch.Tensor, seed: int) -> np.ndarray:
    """The integer input spikes [S, *input, T] (int64) a deployment sends for pixels ``x``: the
    model's encoder, rate coding drawn from ``seed`` (the model's generator is reseeded)."""
    model.generator.manual_seed(seed)
    with torch.no_grad():
        return model.encoder.to_integer(model.encoder(x)).numpy()
