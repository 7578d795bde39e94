"""A batched, bit-exact emulator of the deployed network (no Lava needed).

It computes what the Lava processes of :mod:`randhet.deploy.lava_backend` compute, for many
samples at once: Lava's ``Dense`` (integer sum, arithmetic shift by the weight exponent) or
``Conv`` (integer convolution, shift, 24-bit clamp), then Loihi's CUBA neurons from
:func:`randhet.loihi.cuba` with the 24-bit wrap of u and saturation of v, the strict threshold
and the reset. Each layer sees each sample's T steps in its own window, as in the pipelined
Lava network, so rasters compare one to one. Integer sums run as float64 BLAS/conv operations,
exact while every partial sum stays below 2**53.

The overflow rules are a :class:`~randhet.loihi.Datapath` (Lava's by default, a chip's from its
profile). Given a ``watch`` (:class:`~randhet.hardware.Arithmetic`), the emulator also counts,
per layer, the events where that chip and the datapath run could part ways: summed synaptic
inputs beyond its width, ``u`` at exactly ``+-2**23`` (where Lava's one-sided wrap and a 24-bit
register differ), and drawn decays its registers cannot hold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from randhet import loihi
from randhet.decays import DecayDraw
from randhet.deploy.result import RunResult
from randhet.hardware import Arithmetic
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import ConvSpec, DenseSpec, InputSpec

CLAMP_24 = (-(1 << 23), (1 << 23) - 1)


def _shift(a: torch.Tensor, exp: int) -> torch.Tensor:
    return a << exp if exp >= 0 else a >> -exp


def synapse(layer: ExportedLayer, spikes: torch.Tensor, exp: int) -> torch.Tensor:
    """Integer synaptic input ``a`` [B, *shape, T] (int64) for input spikes [B, *in, T]."""
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    x = spikes.to(torch.float64)
    if isinstance(layer.spec, DenseSpec):
        a = torch.einsum("oi,bit->bot", w, x.reshape(x.shape[0], -1, x.shape[-1]))
        return _shift(torch.round(a).to(torch.int64), exp)
    ls = layer.spec
    assert isinstance(ls, ConvSpec)
    b, c, h, wd, t = x.shape
    frames = x.permute(0, 4, 1, 2, 3).reshape(b * t, c, h, wd)
    out = torch.nn.functional.conv2d(frames, w, stride=ls.strides, padding=ls.paddings,
                                     groups=ls.groups)
    out = out.reshape(b, t, *out.shape[1:]).permute(0, 2, 3, 4, 1)
    return _shift(torch.round(out).to(torch.int64), exp).clamp(*CLAMP_24)


def _drive(layer: ExportedLayer, s: torch.Tensor, exp: int
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A layer's synaptic drive ``a << 6`` and bias ``b << bias_exp`` (None: no bias) for the
    spikes ``s`` below it. netx's input layer has no synapse: ``s`` holds each sample's bias
    mantissas [B, *shape, T]."""
    if isinstance(layer.spec, InputSpec):
        return torch.zeros_like(s), s << layer.bias_exp
    a = synapse(layer, s, exp + layer.weight_exp)
    if layer.bias is None:
        return a << loihi.ACT_SHIFT, None
    return a << loihi.ACT_SHIFT, torch.as_tensor(layer.bias).unsqueeze(-1) << layer.bias_exp


EVENTS = ("q0_beyond_width", "u_at_2pow23", "current_decays_out_of_range",
          "voltage_decays_out_of_range")


def chip_events(drive: torch.Tensor, u: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
                watch: Arithmetic) -> dict[str, int]:
    """Counts of :data:`EVENTS` in one layer's batch: (sample, neuron, step) entries of the
    drive ``a << 6`` beyond ``watch``'s signed width and of ``u`` at ``+-2**23``; drawn decay
    values outside its register ranges. A field ``watch`` does not know counts nothing."""
    out = dict.fromkeys(EVENTS, 0)
    if watch.synaptic_input_bits is not None:
        half = 1 << (watch.synaptic_input_bits - 1)
        out["q0_beyond_width"] = int(((drive < -half) | (drive >= half)).sum())
    out["u_at_2pow23"] = int((u.abs() == loihi.MAX_STATE).sum())
    for key, d, rng in (("current_decays_out_of_range", du, watch.current_decay_range),
                        ("voltage_decays_out_of_range", dv, watch.voltage_decay_range)):
        if rng is not None:
            out[key] = int(((d < rng[0]) | (d > rng[1])).sum())
    return out


def emulate(
    net: ExportedNetwork,
    inputs: np.ndarray,
    draws: list[DecayDraw],
    batch_size: int = 256,
    on_progress: Callable[[int], None] | None = None,
    datapath: loihi.Datapath = loihi.LAVA,
    watch: Arithmetic | None = None,
) -> RunResult:
    """Rasters and activity for integer inputs [S, *input, T] and per-layer decays, on the
    ``datapath``; with a ``watch``, also the per-layer :func:`chip_events`. A network that
    starts with netx's input layer takes its neurons' bias mantissas as the inputs."""
    rasters: list[list[np.ndarray]] = [[] for _ in net.layers]
    active: list[list[np.ndarray]] = [[] for _ in net.layers]
    events = [dict.fromkeys(EVENTS, 0) for _ in net.layers]
    shift = net.spec.encoding.input_shift
    for i in range(0, len(inputs), batch_size):
        s = torch.as_tensor(inputs[i:i + batch_size], dtype=torch.int64)
        for k, layer in enumerate(net.layers):
            drive, bias = _drive(layer, s, -shift if k == 0 else 0)
            du = draws[k].current[i:i + batch_size].to(torch.int64)
            dv = draws[k].voltage[i:i + batch_size].to(torch.int64)
            u, v, s = loihi.cuba(drive, du, dv, layer.threshold_mant, datapath=datapath,
                                 bias=bias)
            if watch is not None:
                for key, n in chip_events(drive, u, du, dv, watch).items():
                    events[k][key] += n
            rasters[k].append(s.numpy())
            active[k].append(((u != 0) | (v != 0)).reshape(len(s), -1).sum(-1).numpy())
        if on_progress is not None:
            on_progress(min(len(inputs), i + batch_size))
    return RunResult([np.concatenate(r) for r in rasters], [np.concatenate(a) for a in active],
                     events if watch is not None else None)
