"""Read a stock lava-dl netx file (one randhet did not write) as an :class:`ExportedNetwork`.

What lava-dl's ``netx.hdf5.Network`` builds from ``layer/<i>`` groups, for the layers and
neurons randhet runs: CUBA-LIF neurons (netx type ``LOIHI`` or ``CUBA``: ``iDecay``, ``vDecay``,
``vThMant``, ``wgtExp``; ``refDelay`` is read by nothing in netx's LIF either), ``input`` (the
bias-driven input layer, with its ``weight``/``bias`` transform), ``dense``, ``conv`` (square
kernel, stride and padding per axis, no dilation; groups 1 or depthwise), ``pool`` (what
lava-dl's ``slayer.block.cuba.Pool`` writes: one weight for every tap of a KxK window, each
channel pooled on its own; lava-dl's netx itself raises ``NotImplementedError`` on it, so it
runs on the emulator only) and ``flatten``; per-neuron or per-channel ``bias``. Shapes in the
file are (C, H, W) (netx reverses them to W, H, C) and conv weights are [out, in / groups, kH,
kW], torch's layout, as randhet's own files. Anything else (sigma-delta or resonate-and-fire
neurons, transposed convolutions, unpooling, synaptic delays, dilation) is a
:class:`~randhet.errors.NetworkFileError` naming the layer. The network runs with sigma = 0:
every neuron keeps its layer's decays; ``simulation/tSample`` (16 when absent) sets T.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from randhet.deployed import ExportedLayer, ExportedNetwork
from randhet.errors import NetworkFileError
from randhet.spec import (
    ConvSpec,
    DenseSpec,
    EncodingSpec,
    FlattenSpec,
    InputSpec,
    LayerSpec,
    NetworkSpec,
    NeuronSpec,
)

CUBA_TYPES = ("LOIHI", "CUBA")
DEFAULT_TIMESTEPS = 16  # when the file has no simulation/tSample
NETX_BIAS_EXP = 6  # netx gives every CUBA neuron bias_exp = 6
NETX_INPUT_WEIGHT = 64  # netx's input transform when the file gives none


def _value(g: h5py.Group, key: str) -> Any:
    return np.asarray(g[key][()])


def _int(g: h5py.Group, key: str, default: int | None = None) -> int:
    if key not in g:
        if default is None:
            raise KeyError(key)
        return default
    return int(_value(g, key).reshape(-1)[0])


def _text(g: h5py.Group, key: str) -> str:
    v = _value(g, key).reshape(-1)[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def _pair(g: h5py.Group, key: str, default: int) -> tuple[int, int]:
    if key not in g:
        return (default, default)
    v = _value(g, key).reshape(-1)
    return (int(v[0]), int(v[-1]))


def _integers(p: Path, i: int, what: str, raw: np.ndarray) -> np.ndarray:
    out = np.rint(raw).astype(np.int64)
    if not np.array_equal(out, raw):
        raise NetworkFileError(f"{p}: layer {i} {what} are not integers")
    return out


def _neuron(p: Path, i: int, g: h5py.Group) -> tuple[int, int, int, int]:
    """(iDecay, vDecay, vThMant, wgtExp) of a CUBA neuron group; anything else refused."""
    if "neuron" not in g:
        raise NetworkFileError(f"{p}: layer {i} has no neuron group")
    n = g["neuron"]
    kind = _text(n, "type")
    if kind not in CUBA_TYPES:
        raise NetworkFileError(f"{p}: layer {i} has {kind!r} neurons; randhet runs CUBA-LIF "
                               f"({' or '.join(CUBA_TYPES)}) only")
    du, dv = _int(n, "iDecay"), _int(n, "vDecay")
    if not (0 <= du <= 4096 and 0 <= dv <= 4096):
        raise NetworkFileError(f"{p}: layer {i} decays are outside 0..4096")
    return du, dv, _int(n, "vThMant"), _int(n, "wgtExp", 0)


def _bias(p: Path, i: int, g: h5py.Group, shape: tuple[int, ...]) -> np.ndarray | None:
    """The bias mantissa broadcast to the neuron shape (per channel for a conv)."""
    if "bias" not in g:
        return None
    b = _integers(p, i, "biases", _value(g, "bias").astype(np.float64).reshape(-1))
    if b.size == 1:
        return np.full(shape, int(b[0]), dtype=np.int64)
    if b.size == shape[0]:
        return np.broadcast_to(b.reshape(-1, *([1] * (len(shape) - 1))), shape).copy()
    if b.size == int(np.prod(shape)):
        return b.reshape(shape)
    raise NetworkFileError(f"{p}: layer {i} has {b.size} biases for neurons of shape {shape}")


def _refuse_extras(p: Path, i: int, g: h5py.Group) -> None:
    if "delay" in g and np.any(_value(g, "delay")):
        raise NetworkFileError(f"{p}: layer {i} has synaptic delays; randhet runs none")
    if "dilation" in g and np.any(_value(g, "dilation") != 1):
        raise NetworkFileError(f"{p}: layer {i} is a dilated conv; randhet runs none")


def _spatial(p: Path, i: int, g: h5py.Group, kind: str, shape: tuple[int, ...] | None
             ) -> tuple[ConvSpec, np.ndarray]:
    """A ``conv`` or ``pool`` layer's spec and integer weights [out, in / groups, K, K]."""
    if shape is None or len(shape) != 3:
        raise NetworkFileError(f"{p}: layer {i} is a {kind} with no (C, H, W) input before it")
    channels = shape[0]
    kh, kw = _pair(g, "kernelSize", 3)
    if kh != kw:
        raise NetworkFileError(f"{p}: layer {i} has a {kh}x{kw} kernel; randhet runs "
                               "square kernels")
    w = _value(g, "weight").astype(np.float64)
    if kind == "pool":  # slayer's Pool: stride defaults to the kernel, one weight per tap
        tap = w.reshape(-1)[0] if w.size else None
        if tap is None or not (w == tap).all():
            raise NetworkFileError(f"{p}: layer {i} is a pool with unequal weights")
        spec = ConvSpec(tuple(shape), channels, kh, _pair(g, "stride", kh),
                        _pair(g, "padding", 0), pool=True, pool_weight=float(tap))
        if "shape" in g and tuple(int(n) for n in _value(g, "shape").reshape(-1)) != spec.out_shape:
            raise NetworkFileError(f"{p}: layer {i} pools a size its window does not tile "
                                   "(slayer pads the end with zeros); randhet runs none")
        taps = np.full((channels, 1, kh, kw), tap)
        return spec, _integers(p, i, "weights", taps)
    out, groups = _int(g, "outChannels"), _int(g, "groups", 1)
    depthwise = groups == channels == out and groups > 1
    if groups != 1 and not depthwise:
        raise NetworkFileError(f"{p}: layer {i} is a conv with {groups} groups; randhet runs "
                               "groups = 1 or depthwise (groups = channels in = out)")
    spec = ConvSpec(tuple(shape), out, kh, _pair(g, "stride", 1), _pair(g, "padding", 0),
                    pool=depthwise)
    return spec, _integers(p, i, "weights", w.reshape(out, channels // groups, kh, kw))


def _layer(p: Path, i: int, g: h5py.Group, shape: tuple[int, ...] | None
           ) -> tuple[LayerSpec, ExportedLayer | None]:
    kind = _text(g, "type")
    if kind == "flatten":
        if shape is None:
            raise NetworkFileError(f"{p}: layer {i} flattens an unknown shape")
        return FlattenSpec(tuple(shape)), None
    if kind not in ("input", "dense", "conv", "pool"):
        raise NetworkFileError(f"{p}: layer {i} is a {kind!r} layer; randhet runs input, dense, "
                               "conv, pool and flatten layers")
    _refuse_extras(p, i, g)
    du, dv, vth, wexp = _neuron(p, i, g)
    spec: LayerSpec
    if kind == "input":
        spec = InputSpec(tuple(int(n) for n in _value(g, "shape").reshape(-1)),
                         _int(g, "weight", NETX_INPUT_WEIGHT), _int(g, "bias", 0))
        weight = np.zeros((0,), dtype=np.int64)
        bias = None  # the transform's bias is part of each sample's bias mantissa
    elif kind == "dense":
        w = _value(g, "weight").astype(np.float64)
        w = w.reshape(_int(g, "outFeatures"), -1) if w.ndim < 2 else w.reshape(w.shape[0], -1)
        spec = DenseSpec(w.shape[1], w.shape[0])
        weight = _integers(p, i, "weights", w)
        bias = _bias(p, i, g, spec.out_shape)
    else:
        spec, weight = _spatial(p, i, g, kind, shape)
        bias = _bias(p, i, g, spec.out_shape)
    if weight.size and (weight.min() < -256 or weight.max() > 255):
        raise NetworkFileError(f"{p}: layer {i} weights exceed 8 bits")
    if "shape" in g and kind != "input":
        declared = tuple(int(n) for n in _value(g, "shape").reshape(-1))
        if int(np.prod(declared)) != int(np.prod(spec.out_shape)):
            raise NetworkFileError(f"{p}: layer {i} declares shape {declared}, its weights give "
                                   f"{spec.out_shape}")
    return spec, ExportedLayer(spec=spec, weight=weight, current_decay=du, voltage_decay=dv,
                               threshold_mant=vth, bias=bias, bias_exp=NETX_BIAS_EXP,
                               weight_exp=wexp)


def read_stock(p: Path, f: h5py.File) -> ExportedNetwork:
    """The stock netx file ``f`` (opened from ``p``) as a deployable network."""
    if "layer" not in f or not len(f["layer"]):
        raise NetworkFileError(f"{p}: no randhet metadata and no netx layer group")
    specs: list[LayerSpec] = []
    layers: list[ExportedLayer] = []
    shape: tuple[int, ...] | None = None
    try:
        for i in sorted(int(k) for k in f["layer"]):
            spec, layer = _layer(p, i, f["layer"][str(i)], shape)
            specs.append(spec)
            if layer is not None:
                layers.append(layer)
            shape = tuple(spec.out_shape)
        steps = _int(f["simulation"], "tSample") if "simulation" in f else DEFAULT_TIMESTEPS
        first = specs[0]
        in_shape = (first.in_features,) if isinstance(first, DenseSpec) else first.in_shape
        spec = NetworkSpec(tuple(in_shape), tuple(specs), NeuronSpec(sigma=0.0),
                           EncodingSpec(kind="rate", timesteps=steps),
                           int(np.prod(specs[-1].out_shape)))
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetworkFileError(f"{p}: not a netx network randhet can read ({exc})") from None
    return ExportedNetwork(spec, tuple(layers), {}, p, stock=True)
