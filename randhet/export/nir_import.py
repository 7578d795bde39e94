"""NIR import: a NIR graph read, validated and quantized to a deployable randhet network
(mapping: :mod:`randhet.export.nir_mapping`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from randhet.config import load_config
from randhet.data import load_dataset
from randhet.decays import noise_shape
from randhet.errors import NetworkFileError, UserError
from randhet.export.netx import write_network
from randhet.export.nir_mapping import (
    DEFAULT_DT,
    SUPPORTED,
    VTH_MAX,
    decay_from_tau,
    load_nir,
)
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import (
    DECAY_SCALE,
    WEIGHT_SCALE,
    ConvSpec,
    DenseSpec,
    EncodingSpec,
    FlattenSpec,
    LayerSpec,
    NetworkSpec,
    NeuronSpec,
)


def read_nir(path: str | Path) -> Any:
    """Read a NIR file; a missing, non-HDF5 or unreadable file is a one-line NetworkFileError."""
    p = Path(path)
    if not p.is_file():
        raise NetworkFileError(f"NIR file not found: {p}")
    try:
        with h5py.File(p, "r") as f:
            if "node" not in f:
                raise NetworkFileError(f"{p}: not a NIR file (no 'node' group)")
    except OSError:
        raise NetworkFileError(f"{p}: not an HDF5 file (corrupt or wrong file)") from None
    try:
        graph = load_nir().read(p)
    except NetworkFileError:
        raise
    except Exception as exc:  # nir raises anything from KeyError to AssertionError
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise NetworkFileError(f"{p}: not a valid NIR graph ({why})") from None
    if type(graph).__name__ != "NIRGraph":
        raise NetworkFileError(f"{p}: the top node is a {type(graph).__name__}, not a NIRGraph")
    return graph


def _meta(node: Any) -> dict[str, Any]:
    out = {}
    for k, v in (getattr(node, "metadata", None) or {}).items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        elif isinstance(v, np.generic):
            v = v.item()
        out[str(k)] = v
    return out


def _data_config(gmeta: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The graph's ``randhet_data`` metadata (a data set config table), None if absent; a
    NetworkFileError if it is not a JSON table."""
    if "randhet_data" not in gmeta:
        return None
    try:
        data = json.loads(str(gmeta["randhet_data"]))
    except ValueError:
        data = None
    if not isinstance(data, dict) or "dataset" not in data:
        raise NetworkFileError(f"{where}: the randhet_data metadata is not a JSON data set "
                               "config; give one with --config")
    return data


def _chain(graph: Any, where: str) -> list[str]:
    """Node names from the Input to the Output; refuses anything that is not one chain."""
    nodes = graph.nodes
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            raise NetworkFileError(f"{where}: node {name!r} is a {kind}, which randhet cannot "
                                   f"import (supported: {', '.join(SUPPORTED)})")
    inputs = [n for n, v in nodes.items() if type(v).__name__ == "Input"]
    outputs = [n for n, v in nodes.items() if type(v).__name__ == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NetworkFileError(f"{where}: needs exactly one Input and one Output node, has "
                               f"{len(inputs)} and {len(outputs)}")
    nxt: dict[str, str] = {}
    seen_dst: set[str] = set()
    for edge in graph.edges:
        src, dst = (str(e) for e in edge)
        if src not in nodes or dst not in nodes:
            raise NetworkFileError(f"{where}: edge {src!r} -> {dst!r} names a missing node")
        if src in nxt or dst in seen_dst:
            raise NetworkFileError(f"{where}: the edges are not a chain (node {src!r} or "
                                   f"{dst!r} branches or merges)")
        nxt[src] = dst
        seen_dst.add(dst)
    order = [inputs[0]]
    while order[-1] in nxt and len(order) <= len(nodes):
        order.append(nxt[order[-1]])
    if order[-1] != outputs[0] or len(order) != len(nodes):
        raise NetworkFileError(f"{where}: the edges are not one chain from {inputs[0]!r} to "
                               f"{outputs[0]!r} through every node")
    return order


def _array(node: Any, field: str, name: str, where: str) -> np.ndarray:
    try:
        a = np.asarray(getattr(node, field), dtype=np.float64)
    except (TypeError, ValueError):
        raise NetworkFileError(f"{where}: node {name!r} {field} is not numeric") from None
    if np.isnan(a).any():
        raise NetworkFileError(f"{where}: node {name!r} {field} holds NaN")
    return a


def _pair(value: Any, name: str, field: str, where: str) -> int:
    """One int from an int or an equal pair (stride, padding, kernel size)."""
    a = np.atleast_1d(np.asarray(value)).reshape(-1)
    if a.size not in (1, 2) or a.min() != a.max() or a[0] != int(a[0]):
        raise NetworkFileError(f"{where}: node {name!r} {field} {a.tolist()} is not one "
                               f"square integer value")
    return int(a[0])


@dataclass
class _Layer:
    """A synapse + CubaLIF read from the graph, before quantization."""

    spec: DenseSpec | ConvSpec
    weight: np.ndarray  # float, threshold-normalised (neurons spike at 1, unit gains)
    threshold: np.ndarray  # v_threshold [*shape]
    du: np.ndarray  # int64 [*shape]
    dv: np.ndarray
    raw_weight: np.ndarray  # as in the graph
    meta: dict[str, Any]
    name: str


def _no_bias(node: Any, name: str, where: str) -> None:
    """Refuse a nonzero bias, except exactly the floor compensation randhet's own export
    writes (``--floor-bias``: every entry ``-randhet_floor_bias``, named in the metadata)."""
    bias = _array(node, "bias", name, where)
    compensation = _meta(node).get("randhet_floor_bias")
    if compensation is not None and np.all(bias == -float(compensation)):
        return
    if np.any(bias != 0):
        raise NetworkFileError(f"{where}: node {name!r} has a nonzero bias (randhet neurons "
                               "have none)")


def _is_diagonal_pool(w: np.ndarray, c: int) -> bool:
    """Whether a groups = 1 Conv2d weight [C, C, K, K] is average pooling written out (what
    ``randhet export --format nir --pool-as conv`` writes for tools without AvgPool2d): every
    output channel reads only its own input channel, all with one equal weight."""
    if w.shape[:2] != (c, c):
        return False
    diagonal = np.stack([w[i, i] for i in range(c)])
    off = w.copy()
    for i in range(c):
        off[i, i] = 0
    return bool(np.all(off == 0) and np.ptp(diagonal) == 0 and diagonal.flat[0] != 0)


def _synapse(node: Any, name: str, shape: tuple[int, ...], where: str
             ) -> tuple[DenseSpec | ConvSpec, np.ndarray]:
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        w = _array(node, "weight", name, where)
        if w.ndim != 2:
            raise NetworkFileError(f"{where}: node {name!r} weight is {w.ndim}-D, expected 2-D")
        if len(shape) != 1:
            raise NetworkFileError(f"{where}: node {name!r} gets input {shape}; put a Flatten "
                                   f"before it")
        if w.shape[1] != shape[0]:
            raise NetworkFileError(f"{where}: node {name!r} takes {w.shape[1]} inputs, the "
                                   f"previous node gives {shape[0]}")
        if kind == "Affine":
            _no_bias(node, name, where)
        return DenseSpec(int(w.shape[1]), int(w.shape[0])), w
    if len(shape) != 3:
        raise NetworkFileError(f"{where}: node {name!r} needs (C, H, W) input, gets {shape}")
    c = shape[0]
    if kind in ("SumPool2d", "AvgPool2d"):
        k = _pair(node.kernel_size, name, "kernel_size", where)
        s = _pair(node.stride, name, "stride", where)
        p = _pair(node.padding, name, "padding", where)
        value = 1.0 if kind == "SumPool2d" else 1.0 / (k * k)
        w = np.full((c, 1, k, k), value)
        spec = ConvSpec((c, shape[1], shape[2]), c, k, s, p, pool=True)
    else:  # Conv2d
        w = _array(node, "weight", name, where)
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            raise NetworkFileError(f"{where}: node {name!r} weight {w.shape} is not "
                                   f"[C_out, C_in, K, K]")
        k = int(w.shape[2])
        if _pair(node.dilation, name, "dilation", where) != 1:
            raise NetworkFileError(f"{where}: node {name!r} has dilation (Loihi has none)")
        s = _pair(node.stride, name, "stride", where)
        pad = node.padding
        if isinstance(pad, str):
            if pad == "same" and (s != 1 or k % 2 == 0):
                raise NetworkFileError(f"{where}: node {name!r} padding 'same' needs stride 1 "
                                       f"and an odd kernel")
            p = k // 2 if pad == "same" else 0
        else:
            p = _pair(pad, name, "padding", where)
        _no_bias(node, name, where)
        groups = int(np.asarray(node.groups).reshape(-1)[0])
        if groups == 1 and _is_diagonal_pool(w, c):  # a pool written as a full Conv2d
            w, groups = np.stack([w[i, i] for i in range(c)])[:, None], c
        depthwise = groups == c == w.shape[0] and w.shape[1] == 1 and (groups > 1 or
                                                                       w.shape[0] == 1)
        if groups != 1 and not depthwise:
            raise NetworkFileError(f"{where}: node {name!r} has groups={groups}; randhet "
                                   f"deploys groups=1 or depthwise pooling only")
        if depthwise and np.ptp(w) != 0:
            raise NetworkFileError(f"{where}: node {name!r} is a depthwise convolution with "
                                   f"unequal weights; randhet deploys depthwise ones as "
                                   f"pooling (equal weights) only")
        if not depthwise and w.shape[1] != c:
            raise NetworkFileError(f"{where}: node {name!r} takes {w.shape[1]} channels, the "
                                   f"previous node gives {c}")
        spec = ConvSpec((c, shape[1], shape[2]), int(w.shape[0]), k, s, p, pool=depthwise,
                        pool_weight=float(w.flat[0]) if depthwise else 1.0)
    ish = getattr(node, "input_shape", None)
    if ish is not None and tuple(int(n) for n in np.asarray(ish).reshape(-1)) != shape[1:]:
        raise NetworkFileError(f"{where}: node {name!r} input_shape {tuple(ish)} differs from "
                               f"the previous node's {shape[1:]}")
    if min(spec.out_shape[1:]) < 1:
        raise NetworkFileError(f"{where}: node {name!r} shrinks {shape} to nothing")
    return spec, w


def _neuron(node: Any, name: str, shape: tuple[int, ...], dt: float, where: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(du, dv, g h / v_threshold, v_threshold) of a CubaLIF node, each [*shape]."""
    vals = {}
    for f in ("tau_syn", "tau_mem", "r", "w_in", "v_threshold", "v_leak", "v_reset"):
        a = _array(node, f, name, where)
        try:
            vals[f] = np.broadcast_to(a, shape)
        except ValueError:
            raise NetworkFileError(f"{where}: node {name!r} {f} has shape {a.shape}, the "
                                   f"synapse before it gives {shape}") from None
    for f in ("tau_syn", "tau_mem", "r", "w_in", "v_threshold"):
        a = vals[f]
        if not np.isfinite(a).all() or (a <= 0).any():
            raise NetworkFileError(f"{where}: node {name!r} {f} must be finite and positive")
    for f in ("v_leak", "v_reset"):
        if not np.isfinite(vals[f]).all() or (vals[f] != 0).any():
            raise NetworkFileError(f"{where}: node {name!r} {f} must be 0 (Loihi CUBA neurons "
                                   f"leak and reset to 0)")
    du, dv = decay_from_tau(vals["tau_syn"], dt), decay_from_tau(vals["tau_mem"], dt)
    for d, f in ((du, "tau_syn"), (dv, "tau_mem")):
        if d.max() > DECAY_SCALE:
            raise NetworkFileError(f"{where}: node {name!r} {f} is shorter than dt = {dt:g} s "
                                   f"(a decay above 100% per step)")
    g = vals["w_in"] * dt / vals["tau_syn"]
    h = vals["r"] * dt / vals["tau_mem"]
    return du, dv, g * h / vals["v_threshold"], np.asarray(vals["v_threshold"])


def _graph_layers(graph: Any, dt: float, where: str) -> tuple[tuple[int, ...], list[Any]]:
    """Input shape and the layer sequence (FlattenSpec or _Layer) of a chain graph."""
    order = _chain(graph, where)
    nodes = graph.nodes
    try:
        shape = tuple(int(n) for n in np.asarray(nodes[order[0]].input_type["input"]).ravel())
    except (TypeError, KeyError, ValueError):
        raise NetworkFileError(f"{where}: the Input node has no shape") from None
    if not shape or min(shape) < 1:
        raise NetworkFileError(f"{where}: the Input node has shape {shape}")
    in_shape = shape
    seq: list[Any] = []
    pending: tuple[str, DenseSpec | ConvSpec, np.ndarray] | None = None
    for name in order[1:]:
        node = nodes[name]
        kind = type(node).__name__
        if kind in ("Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Output"):
            if pending is not None:
                raise NetworkFileError(f"{where}: node {pending[0]!r} is not followed by a "
                                       f"CubaLIF (randhet layers are synapse + CubaLIF)")
        if kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            if end != -1 or start not in (0, 1) or (start == 1 and len(shape) == 1):
                raise NetworkFileError(f"{where}: node {name!r} flattens dims {start}..{end}; "
                                       f"randhet flattens a whole (C, H, W) sample")
            seq.append(FlattenSpec(shape))
            shape = seq[-1].out_shape
        elif kind == "CubaLIF":
            if pending is None:
                raise NetworkFileError(f"{where}: CubaLIF {name!r} has no synapse before it")
            syn_name, spec, w = pending
            out = tuple(spec.out_shape)
            du, dv, scale, threshold = _neuron(node, name, out, dt, where)
            if isinstance(spec, DenseSpec):
                w_norm = w * scale[:, None]
            else:
                per_ch = scale.reshape(out[0], -1)
                if not np.allclose(per_ch, per_ch[:, :1], rtol=1e-9, atol=0):
                    raise NetworkFileError(f"{where}: node {name!r} has a threshold or gain "
                                           f"that varies within a channel (one per channel at "
                                           f"most for a convolution)")
                w_norm = w * per_ch[:, 0].reshape(-1, 1, 1, 1)
            seq.append(_Layer(spec, w_norm, threshold, du, dv, w, _meta(node), syn_name))
            shape = out
            pending = None
        elif kind == "Output":
            try:
                oshape = tuple(int(n) for n in np.asarray(node.output_type["output"]).ravel())
            except (TypeError, KeyError, ValueError):
                oshape = shape
            if oshape and oshape != shape:
                raise NetworkFileError(f"{where}: the Output node has shape {oshape}, the "
                                       f"network gives {shape}")
        else:
            spec, w = _synapse(node, name, shape, where)
            pending = (name, spec, w)
    if not any(isinstance(x, _Layer) for x in seq):
        raise NetworkFileError(f"{where}: the graph has no synapse + CubaLIF layer")
    return in_shape, seq


def _quantize(layers: list[_Layer], where: str) -> tuple[int, list[np.ndarray], bool]:
    """Common vThMant and integer weights; True where the graph was on randhet's grid."""
    ths = np.concatenate([ly.threshold.ravel() for ly in layers])
    vth = int(round(ths[0] * WEIGHT_SCALE))
    if np.all(ths == ths[0]) and 1 <= vth <= VTH_MAX and vth == ths[0] * WEIGHT_SCALE:
        ints = [ly.weight * vth for ly in layers]
        if all(np.allclose(x, 2 * np.rint(x / 2), rtol=0, atol=1e-6)
               and x.min(initial=0) >= -256 and x.max(initial=0) <= 254 for x in ints):
            return vth, [(2 * np.rint(x / 2)).astype(np.int64) for x in ints], True
    bound = float(VTH_MAX)
    for ly in layers:
        pos, neg = max(ly.weight.max(initial=0), 0), max(-ly.weight.min(initial=0), 0)
        if pos > 0:
            bound = min(bound, 254 / pos)
        if neg > 0:
            bound = min(bound, 256 / neg)
    vth = int(math.floor(bound))
    if vth < 1:
        worst = max(layers, key=lambda ly: np.abs(ly.weight).max(initial=0))
        raise NetworkFileError(
            f"{where}: node {worst.name!r} has weights {np.abs(worst.weight).max():.4g} times "
            f"its threshold; Loihi's 8-bit weights hold at most 254 times the smallest one")
    ints = [(2 * np.rint(ly.weight * vth / 2)).astype(np.int64) for ly in layers]
    return vth, [np.clip(x, -256, 254) for x in ints], False


@dataclass(frozen=True)
class ImportReport:
    """What :func:`from_nir` did: the common threshold, exactness and the weight error."""

    threshold_mant: int
    exact: bool  # the graph already was randhet's integer grid
    max_weight_error: float  # largest |w_int / vThMant - W'| (threshold-normalised units)
    metadata: bool  # randhet's own metadata was used (spec, distribution, data set)


def from_nir(
    graph: Any,
    *,
    dt: float | None = None,
    data: dict[str, Any] | None = None,
    encoding: EncodingSpec | None = None,
    input_shape: tuple[int, ...] | None = None,
    path: str | Path = "network.nir",
) -> tuple[ExportedNetwork, ImportReport]:
    """A randhet network from a NIR chain graph (see the module docstring).

    ``dt`` defaults to the graph's metadata ``dt`` (randhet's export) or ``DEFAULT_DT``.
    ``data``/``encoding``/``input_shape`` default to the graph's randhet metadata; a graph
    without it needs them. Anything randhet cannot run is a one-line NetworkFileError.
    """
    where = str(path)
    gmeta = _meta(graph)
    if dt is None:
        dt = float(gmeta.get("dt", DEFAULT_DT))
    if not (dt > 0 and math.isfinite(dt)):
        raise NetworkFileError(f"{where}: dt must be a positive number of seconds, got {dt}")
    in_shape, seq = _graph_layers(graph, dt, where)
    layers = [x for x in seq if isinstance(x, _Layer)]
    vth, ints, exact = _quantize(layers, where)
    specs: tuple[LayerSpec, ...] = tuple(x if isinstance(x, FlattenSpec) else x.spec for x in seq)

    meta_spec = None
    if "randhet_spec" in gmeta:
        try:
            meta_spec = NetworkSpec.from_json(str(gmeta["randhet_spec"]))
        except (ValueError, TypeError, KeyError):
            meta_spec = None
        if meta_spec is not None and _strip_pool_weight(meta_spec.layers) != \
                _strip_pool_weight(specs):
            meta_spec = None  # an edited graph: its metadata no longer describes it
    if data is None:
        data = _data_config(gmeta, where)
    if data is None:
        raise NetworkFileError(f"{where}: the graph carries no randhet data set config; give "
                               f"one with --config")
    enc = encoding or (meta_spec.encoding if meta_spec else None)
    if enc is None:
        raise NetworkFileError(f"{where}: the graph carries no randhet encoding; give one with "
                               f"--config")
    if input_shape is None:
        input_shape = meta_spec.input_shape if meta_spec else in_shape
    spatial = tuple(input_shape[:-1]) if enc.kind == "events" else tuple(input_shape)
    if spatial != in_shape:
        raise NetworkFileError(f"{where}: the Input node has shape {in_shape}, the data set "
                               f"gives {spatial}")

    means = [(int(np.rint(ly.du.mean())), int(np.rint(ly.dv.mean()))) for ly in layers]
    if meta_spec is not None:
        neuron = meta_spec.neuron
        for k, ly in enumerate(layers):
            try:
                means[k] = (int(ly.meta["randhet_current_decay"]),
                            int(ly.meta["randhet_voltage_decay"]))
            except (KeyError, ValueError, TypeError):
                pass
    else:
        uniform = all(np.ptp(ly.du) == 0 and np.ptp(ly.dv) == 0 for ly in layers)
        neuron = NeuronSpec(current_decay=means[0][0] / DECAY_SCALE,
                            voltage_decay=means[0][1] / DECAY_SCALE, sigma=0.0,
                            resample="forward" if uniform else "fixed", granularity="neuron")
    neuron = replace(neuron, threshold=vth / WEIGHT_SCALE)
    num_classes = int(layers[-1].spec.out_shape[0])
    try:
        spec = NetworkSpec(tuple(input_shape), specs, neuron, enc, num_classes)
    except ValueError as exc:
        raise NetworkFileError(f"{where}: not a randhet network ({exc})") from None
    pool_weights = iter([w.flat[0] / WEIGHT_SCALE for w in ints] if meta_spec is None else
                        [getattr(ly, "pool_weight", 1.0) for ly in meta_spec.spiking_layers])
    fixed_layers = []
    for ly in spec.layers:  # the pool weight: as the metadata says, else the integer one
        pw = None if isinstance(ly, FlattenSpec) else next(pool_weights)
        pool = isinstance(ly, ConvSpec) and ly.pool
        fixed_layers.append(replace(ly, pool_weight=float(pw)) if pool else ly)
    spec = replace(spec, layers=tuple(fixed_layers))
    layers = [replace(ly, spec=s) for ly, s in zip(layers, spec.spiking_layers, strict=True)]

    out_layers = []
    err = 0.0
    for ly, w, (mc, mv) in zip(layers, ints, means, strict=True):
        fixed_c = fixed_v = None
        if neuron.resample == "fixed":
            ns = noise_shape(neuron, tuple(ly.spec.out_shape))
            index = tuple(slice(0, n) for n in ns)
            fixed_c, fixed_v = ly.du[index].copy(), ly.dv[index].copy()
        out_layers.append(ExportedLayer(ly.spec, w, mc, mv, vth, fixed_c, fixed_v,
                                        _binding(ly.meta, neuron, where)))
        err = max(err, float(np.abs(w / vth - ly.weight).max(initial=0)))
    net = ExportedNetwork(spec, tuple(out_layers), dict(data), Path(path))
    return net, ImportReport(vth, exact, err, meta_spec is not None)


def _binding(meta: dict[str, Any], neuron: NeuronSpec, where: str) -> np.ndarray | None:
    """A profile-grouped layer's binding from its LIF node's metadata (None otherwise)."""
    if neuron.granularity != "profile":
        return None
    if "randhet_profile_binding" not in meta:
        raise NetworkFileError(f"{where}: a profile-grouped network's LIF node carries no "
                               "randhet_profile_binding")
    return np.asarray(meta["randhet_profile_binding"], dtype=np.int64).reshape(-1)


def _strip_pool_weight(layers: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
    return tuple(replace(ly, pool_weight=1.0) if isinstance(ly, ConvSpec) else ly
                 for ly in layers)


def import_nir(
    path: str | Path,
    out_dir: str | Path,
    config: str | Path | None = None,
    dt: float | None = None,
) -> tuple[Path, ImportReport]:
    """Read ``path``, build the randhet network and write ``OUT_DIR/network.net``.

    ``config`` (a randhet TOML config) gives the data set and encoding (needed for a graph that
    randhet did not write; it overrides the graph's metadata otherwise). The graph's input must
    have the data set's sample shape and its output the data set's class count.
    """
    if dt is not None and not (dt > 0 and math.isfinite(dt)):
        raise UserError(f"--dt must be a positive number of seconds, got {dt}")
    graph = read_nir(path)
    gmeta = _meta(graph)
    _graph_layers(graph, dt or float(gmeta.get("dt", DEFAULT_DT)), str(path))  # refuse early
    data = encoding = None
    if config is not None:
        cfg = load_config(config)
        data = cfg["data"]
        enc = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["encoding"].items()}
        encoding = EncodingSpec(**enc)
    if data is None:
        data = _data_config(gmeta, str(path))
    if data is None:
        raise NetworkFileError(f"{path}: the graph carries no randhet data set config; give "
                               f"one with --config")
    timesteps = encoding.timesteps if encoding else _meta_timesteps(gmeta)
    splits = load_dataset(data, timesteps=timesteps)
    net, report = from_nir(graph, dt=dt, data=data, encoding=encoding,
                           input_shape=splits.input_shape, path=path)
    if net.spec.num_classes != splits.num_classes:
        raise NetworkFileError(f"{path}: the graph has {net.spec.num_classes} outputs, the data "
                               f"set {splits.num_classes} classes")
    target = write_network(net, Path(out_dir) / "network.net")
    return target, report


def _meta_timesteps(gmeta: dict[str, Any]) -> int:
    try:
        return NetworkSpec.from_json(str(gmeta["randhet_spec"])).encoding.timesteps
    except (KeyError, ValueError, TypeError):
        return EncodingSpec().timesteps
