"""Synapses per neuron of a deployed layer, counted on its integer weights (convs unrolled:
one synapse per connection, zero padding excluded). Profiling counts them per presynaptic
neuron (synaptic operations), the fit check per postsynaptic neuron (memory, fan-in)."""

from __future__ import annotations

import numpy as np
import torch

from randhet.network import ExportedLayer
from randhet.spec import ConvSpec, DenseSpec, InputSpec


def output_padding(ls: ConvSpec) -> tuple[int, int]:
    """``output_padding`` (height, width) that makes the transposed conv give back
    ``ls.in_shape``."""
    return tuple(  # type: ignore[return-value]
        n - ((o - 1) * s - 2 * p + ls.kernel)
        for n, o, s, p in zip(ls.in_shape[1:], ls.out_shape[1:], ls.strides, ls.paddings,
                              strict=True))


def _conv_counts(ls: ConvSpec, kernel: np.ndarray, per: str) -> np.ndarray:
    """Per neuron (``per`` = "post": output shape, "pre": input shape), the sum of ``kernel``
    entries over its connections: a conv of ones (post) or its adjoint (pre)."""
    k = torch.as_tensor(kernel, dtype=torch.float64)
    if per == "post":
        ones = torch.ones((1, *ls.in_shape), dtype=torch.float64)
        out = torch.nn.functional.conv2d(ones, k, stride=ls.strides, padding=ls.paddings,
                                         groups=ls.groups)
    else:
        ones = torch.ones((1, *ls.out_shape), dtype=torch.float64)
        out = torch.nn.functional.conv_transpose2d(ones, k, stride=ls.strides,
                                                   padding=ls.paddings, groups=ls.groups,
                                                   output_padding=output_padding(ls))
    return np.rint(out[0].numpy()).astype(np.int64)


def synapse_counts(layer: ExportedLayer, per: str) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron: synapses with a nonzero weight, and all synapses (zero weights included).

    ``per = "post"``: per output neuron, flat in (C, H, W) order (fan-in: the input axons it
    reads); ``per = "pre"``: per presynaptic neuron, in the layer's input shape (fan-out).
    netx's input layer has none."""
    w = layer.weight
    if isinstance(layer.spec, InputSpec):  # netx's input layer: driven by its bias alone
        shape = (layer.neurons,) if per == "post" else layer.spec.in_shape
        return np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    if isinstance(layer.spec, DenseSpec):
        axis = 1 if per == "post" else 0
        return np.count_nonzero(w, axis=axis), np.full(w.shape[1 - axis], w.shape[axis])
    nonzero = _conv_counts(layer.spec, (w != 0).astype(np.float64), per)
    every = _conv_counts(layer.spec, np.ones_like(w, dtype=np.float64), per)
    if per == "post":
        return nonzero.reshape(-1), every.reshape(-1)
    return nonzero, every
