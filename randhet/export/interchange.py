"""NIR interchange: randhet networks out to, and in from, the Neuromorphic Intermediate
Representation (the ``nir`` package, https://neuroir.org).

Export writes a chain ``Input -> [Flatten] -> Affine | Conv2d -> CubaLIF -> ... -> Output``
holding the deployed network's integers scaled back to float; import reads such a chain (also
with ``Linear``, ``SumPool2d`` or ``AvgPool2d`` synapses), quantizes it to Loihi's widths and
gives an :class:`~randhet.export.netx.ExportedNetwork` that is written as an ordinary
``network.net`` (:func:`~randhet.export.netx.write_network`).

Units and mapping
-----------------
Float values are in SLAYER units: weight ``W = w / 64`` (``w`` the even 8-bit integer weight),
threshold ``v_threshold = vThMant / 64``, states ``I = U / 4096`` and ``v = V / 4096`` (``U``,
``V`` the 24-bit Loihi states), input spikes 1 (binary) or ``x_int / 2**input_bits`` (direct
encoding). Time: ``dt`` is the length of one Loihi step in **seconds** (default
``DEFAULT_DT = 1e-4`` s, the value snnTorch's NIR importer assumes; it is stored in the graph's
and every CubaLIF node's metadata as ``dt``). NIR's CubaLIF is the ODE pair
``tau_syn I' = -I + w_in S``, ``tau_mem v' = (v_leak - v) + r I``, spike ``z = v > v_threshold``,
then ``v = v_reset``. Its forward-Euler step (what snnTorch and Norse run) is::

    I[t] = (1 - dt/tau_syn) I[t-1] + (dt/tau_syn) w_in S[t]
    v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) r I[t]

and Loihi's step (:mod:`randhet.loihi`) is ``U[t] = U[t-1] (4096 - du)/4096 + (a << 6)``,
``V[t] = V[t-1] (4096 - dv)/4096 + U[t]``, spike ``V[t] > vThMant << 6``, then ``V = 0``. They
agree (up to the rounding listed below) with, per neuron::

    tau_syn = dt * 4096 / du        w_in = tau_syn / dt = 4096 / du
    tau_mem = dt * 4096 / dv        r    = tau_mem / dt = 4096 / dv
    v_leak = 0, v_reset = 0, v_threshold = vThMant / 64

so ``(dt/tau_syn) w_in = (dt/tau_mem) r = 1`` (unit gains, as on Loihi). Import inverts it:
``du = round(4096 dt / tau_syn)``, ``dv = round(4096 dt / tau_mem)`` (tau_syn < dt is refused);
other gains ``g = w_in dt / tau_syn`` and ``h = r dt / tau_mem`` and the threshold are folded
into the weights (``W' = W g h / v_threshold``: a neuron with unit gains and threshold 1 spikes
at the same steps), then one common ``vThMant`` is chosen for the whole network (randhet has one
threshold) and ``w = 2 round(W' vThMant / 2)``: the largest ``vThMant <= 2047 * 64`` that keeps
every layer's weights in -256..254. A graph already on randhet's grid (one threshold with
``64 v_threshold`` an integer, every ``64 W g h`` an even integer in range) is taken exactly.
Pooling (randhet's ``pool:K``, a depthwise KxK convolution with stride K and equal weights
``w_p``) is exported as ``AvgPool2d`` (kernel K, stride K, padding 0) with the pool weight folded
into the next CubaLIF's input weight, ``w_in = (tau_syn / dt) K**2 w_p / 64``, so
``avg * (dt/tau_syn) w_in = sum * w_p / 64`` exactly: snnTorch reads ``AvgPool2d`` (not
``SumPool2d``), and NIR's ``Conv2d`` type inference ignores ``groups``, so a depthwise
``Conv2d`` fails ``nir.read``. Import takes ``AvgPool2d`` and ``SumPool2d`` (weights 1/K**2 and
1) and also a depthwise ``Conv2d`` with equal weights. Affine and Conv2d get a zero bias
(snnTorch's importer needs one); a nonzero bias is refused on import.

RandHet decays: the per-neuron arrays hold one named draw (metadata ``randhet_draw``): ``mean``
(every neuron at the mean decay; the default), ``fixed`` (the frozen draw of a resample =
``fixed`` network, the only choice for one) or a seed (``deployment_draws(net, 1, seed)``:
sample 0 of deployment seed ``seed``; for resample = ``step`` its first step). The distribution
is in each CubaLIF node's metadata (``randhet_current_decay``/``randhet_voltage_decay``: the
integer means, ``randhet_sigma``, ``randhet_distribution``, ``randhet_randomize``,
``randhet_granularity``, ``randhet_resample``) and the whole spec and data set config in the
graph's (``randhet_spec``, ``randhet_data``), so a randhet -> NIR -> randhet round trip gives
the same integers and needs no options. A graph without them is imported as a plain network
(sigma = 0; per-neuron decays that differ become a frozen, ``fixed`` draw).

What NIR cannot carry, and how it is approximated
-------------------------------------------------
* Integer rounding. Loihi decays truncate toward zero (``sgn(x) (|x (4096-d)| >> 12)``) and the
  first synapse of a direct-encoded network floors ``sum(w x_int) >> input_bits``; NIR is real
  valued and a float simulator multiplies exactly. Both agree exactly where every Loihi product
  is exact: binary inputs and decays 4096, or 2048 over up to 8 steps (states are multiples of
  2**7 = 128 units: even weights << 6). Otherwise each truncation loses under one state unit
  (``1/4096`` in SLAYER units) per step and neuron, the first-synapse floor under one drive
  unit (``1/64``) per step, and the leaky sums carry these forward; a spike moves only where
  ``v`` comes that close to the threshold. Documented tolerance (tests/test_nir.py): at most
  2 % of the (neuron, step) raster entries of any layer differ and at least 95 % of the samples
  get the same class; measured on the tiny digits test network (direct 4-bit input, decays
  1024 / 123, sigma = 1, one seeded draw, 100 samples): 0.66 % and 0.26 % of the entries of its
  two layers, 100 % of the classes (a one-step layer delay instead: 10.8 % and 4.5 %).
* 24-bit state: ``U`` wraps and ``V`` saturates at +-2**23 (``+-2048`` in SLAYER units); NIR
  states are unbounded. Equal below it; not approximated (a network that reaches it differs).
* Strict threshold: Loihi and NIR both spike at ``v > v_threshold`` (the same).
* Decay 0 (no leak) is ``tau = inf`` with ``w_in = inf``, which no importer can run: export
  writes ``tau = 16384 dt`` (a decay of 1/4 unit, which rounds back to 0; a float simulator
  leaks ``v / 16384`` per step); decay 4096 (no memory) is ``tau = dt``, exact.
* The one-step layer delay: the pipelined Lava network shows layer k a sample one step after
  layer k-1; randhet's emulator and deploy realign each layer's window, so rasters have no delay,
  and neither does a NIR graph (snnTorch runs all layers in the same step). Rasters compare
  step for step; a graph with ``Delay`` nodes is refused.
* Per-step (``step``) and per-sample (``forward``) resampling: NIR holds one fixed array; the
  distribution is only in metadata, which other tools ignore.
* ``dt``: NIR has no time step; the importer must use the exporter's ``dt`` (snnTorch 1.0.0
  hard-codes 1e-4 s and refuses a graph written with another ``--dt``, as its ``r`` check fails).
* The encoder: the graph starts after randhet's input encoding. Feed it the encoded input
  (binary spikes, or the quantized normalised pixel ``x_int / 2**input_bits`` at every step of a
  direct-encoded network); the encoding is only in the metadata.
* snnTorch 1.0.0's importer runs NIR's ``Flatten(start_dim=0)`` as ``torch.nn.Flatten(0, -1)``,
  which also flattens a batch: feed it one unbatched sample at a time (or use 1-D inputs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from randhet.errors import NetworkFileError, UserError
from randhet.export.netx import ExportedLayer, ExportedNetwork, read_network, write_network
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

DEFAULT_DT = 1e-4  # seconds per Loihi step; snnTorch's NIR importer assumes this value
NIR_FORMAT = 1  # version of randhet's metadata in the graph
DECAY_ZERO = 0.25  # a decay of 0 is written as this (tau = 16384 dt); it rounds back to 0
VTH_MAX = 2047 * WEIGHT_SCALE  # largest vThMant randhet configs allow
SUPPORTED = ("Input", "Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten",
             "CubaLIF", "Output")


def _nir() -> Any:
    try:
        import nir
    except ImportError:  # pragma: no cover - nir is a runtime dependency
        raise UserError("NIR interchange needs the 'nir' package (pip install nir)") from None
    return nir


# ----------------------------------------------------------------------------- mapping

def tau_from_decay(d: np.ndarray, dt: float) -> np.ndarray:
    """Time constants (seconds) for integer decays 0..4096: ``dt * 4096 / d`` (d = 0: see
    ``DECAY_ZERO``)."""
    return dt * DECAY_SCALE / np.maximum(np.asarray(d, dtype=np.float64), DECAY_ZERO)


def decay_from_tau(tau: np.ndarray, dt: float) -> np.ndarray:
    """Integer decays ``round(4096 dt / tau)`` (int64; > 4096 where tau < dt)."""
    return np.rint(DECAY_SCALE * dt / np.asarray(tau, dtype=np.float64)).astype(np.int64)


def parse_draw(text: str | int | None) -> str | int | None:
    """``mean``, ``fixed``, a seed (int) or None (the default for the network)."""
    if text is None or isinstance(text, int):
        return text
    if text in ("mean", "fixed"):
        return text
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--draw {text!r}: expected mean, fixed or an integer seed") from None


def _draws(net: ExportedNetwork, draw: str | int | None) -> tuple[str, list[tuple[Any, Any]]]:
    """Per spiking layer (current, voltage) integer decays [*neuron shape] and the draw label."""
    from randhet.deploy.reference import deployment_draws

    neuron = net.spec.neuron
    if draw is None:
        draw = "fixed" if neuron.resample == "fixed" else "mean"
    if neuron.resample == "fixed" and draw != "fixed":
        raise UserError("a resample = 'fixed' network's decays are its frozen draw: use "
                        "--draw fixed")
    if draw == "fixed" and neuron.resample != "fixed":
        raise UserError(f"--draw fixed needs a resample = 'fixed' network, this one is "
                        f"{neuron.resample!r}: use mean or a seed")
    out = []
    if draw == "mean":
        for ly in net.layers:
            out.append((np.full(ly.shape, ly.current_decay, dtype=np.int64),
                        np.full(ly.shape, ly.voltage_decay, dtype=np.int64)))
        return "mean", out
    draws = deployment_draws(net, 1, 0 if draw == "fixed" else int(draw))
    for ly, d in zip(net.layers, draws, strict=True):
        pair = []
        for x in (d.current, d.voltage):
            a = x.numpy()[0]
            if neuron.resample == "step":
                a = a[..., 0]  # the first step's draw
            pair.append(np.broadcast_to(a, ly.shape).astype(np.int64))
        out.append((pair[0], pair[1]))
    return ("fixed" if draw == "fixed" else f"seed {int(draw)}"), out


def to_nir(net: ExportedNetwork, dt: float = DEFAULT_DT, draw: str | int | None = None) -> Any:
    """The NIR graph of an exported network (see the module docstring for the mapping)."""
    nir = _nir()
    if not (dt > 0 and math.isfinite(dt)):
        raise UserError(f"--dt must be a positive number of seconds, got {dt}")
    spec = net.spec
    label, decays = _draws(net, draw)
    shape = tuple(spec.input_shape[:-1] if spec.encoding.kind == "events" else spec.input_shape)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(shape))}
    order = ["input"]
    k = 0
    for i, ls in enumerate(spec.layers):
        if isinstance(ls, FlattenSpec):
            name = f"{i}_flatten"
            nodes[name] = nir.Flatten(input_type=np.array(shape), start_dim=0, end_dim=-1)
            order.append(name)
            shape = tuple(ls.out_shape)
            continue
        layer = net.layers[k]
        w = layer.weight.astype(np.float64) / WEIGHT_SCALE
        gain = 1.0
        if isinstance(ls, DenseSpec):
            name = f"{i}_affine"
            nodes[name] = nir.Affine(weight=w, bias=np.zeros(ls.out_features))
        elif ls.pool:
            if np.ptp(layer.weight) != 0:
                raise UserError(f"layer {i} (pool:{ls.kernel}) has unequal weights")
            name = f"{i}_avgpool"
            nodes[name] = nir.AvgPool2d(
                kernel_size=np.array([ls.kernel] * 2), stride=np.array([ls.stride] * 2),
                padding=np.array([ls.padding] * 2))
            gain = float(layer.weight.flat[0]) / WEIGHT_SCALE * ls.kernel**2  # into w_in
        else:
            name = f"{i}_conv"
            nodes[name] = nir.Conv2d(
                input_shape=(ls.in_shape[1], ls.in_shape[2]), weight=w,
                stride=(ls.stride, ls.stride), padding=(ls.padding, ls.padding),
                dilation=(1, 1), groups=1, bias=np.zeros(ls.out_channels),
            )
        order.append(name)
        shape = tuple(ls.out_shape)
        du, dv = decays[k]
        tau_syn, tau_mem = tau_from_decay(du, dt), tau_from_decay(dv, dt)
        neuron = spec.neuron
        lif = f"{i}_lif"
        nodes[lif] = nir.CubaLIF(
            tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(shape),
            v_threshold=np.full(shape, layer.threshold_mant / WEIGHT_SCALE),
            v_reset=np.zeros(shape), w_in=gain * tau_syn / dt,
            metadata={
                "dt": float(dt), "randhet_draw": label,
                "randhet_current_decay": int(layer.current_decay),
                "randhet_voltage_decay": int(layer.voltage_decay),
                "randhet_sigma": float(neuron.sigma),
                "randhet_distribution": neuron.distribution,
                "randhet_randomize": neuron.randomize,
                "randhet_granularity": neuron.granularity,
                "randhet_resample": neuron.resample,
            },
        )
        order.append(lif)
        k += 1
    nodes["output"] = nir.Output(output_type=np.array(shape))
    order.append("output")
    metadata = {
        "dt": float(dt), "time_unit": "s", "randhet_format": NIR_FORMAT, "randhet_draw": label,
        "randhet_spec": spec.to_json(), "randhet_data": json.dumps(net.data, sort_keys=True),
    }
    edges = list(zip(order[:-1], order[1:], strict=True))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(
    net: ExportedNetwork, path: str | Path, dt: float = DEFAULT_DT, draw: str | int | None = None
) -> Path:
    """Write ``to_nir(net, dt, draw)`` to ``path`` (NIR's HDF5 format)."""
    graph = to_nir(net, dt, draw)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _nir().write(target, graph)
    return target


def export_nir(
    source: str | Path,
    out_path: str | Path | None = None,
    dt: float = DEFAULT_DT,
    draw: str | int | None = None,
) -> Path:
    """``network.nir`` for a trained run folder (default: RUN_DIR/network.nir) or a netx file
    (default: beside it)."""
    import tempfile

    from randhet.export.netx import export_run

    src = Path(source)
    if src.is_file():
        net = read_network(src)
        default = src.with_suffix(".nir")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            net = read_network(export_run(src, Path(tmp) / "network.net"))
        default = src / "network.nir"
    return write_nir(net, Path(out_path) if out_path else default, dt, draw)


# ----------------------------------------------------------------------------- reading

def read_nir(path: str | Path) -> Any:
    """Read a NIR file; a missing, non-HDF5 or unreadable file is a one-line NetworkFileError."""
    import h5py

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
        graph = _nir().read(p)
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
        if kind == "Affine" and np.any(_array(node, "bias", name, where) != 0):
            raise NetworkFileError(f"{where}: node {name!r} has a nonzero bias (randhet "
                                   f"neurons have none)")
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
        if np.any(_array(node, "bias", name, where) != 0):
            raise NetworkFileError(f"{where}: node {name!r} has a nonzero bias (randhet "
                                   f"neurons have none)")
        groups = int(np.asarray(node.groups).reshape(-1)[0])
        depthwise = groups == c == w.shape[0] and w.shape[1] == 1 and groups > 1
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
    if data is None and "randhet_data" in gmeta:
        data = json.loads(str(gmeta["randhet_data"]))
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

    from randhet.decays import noise_shape

    out_layers = []
    err = 0.0
    for ly, w, (mc, mv) in zip(layers, ints, means, strict=True):
        fixed_c = fixed_v = None
        if neuron.resample == "fixed":
            ns = noise_shape(neuron, tuple(ly.spec.out_shape))
            index = tuple(slice(0, n) for n in ns)
            fixed_c, fixed_v = ly.du[index].copy(), ly.dv[index].copy()
        out_layers.append(ExportedLayer(ly.spec, w, mc, mv, vth, fixed_c, fixed_v))
        err = max(err, float(np.abs(w / vth - ly.weight).max(initial=0)))
    net = ExportedNetwork(spec, tuple(out_layers), dict(data), Path(path))
    return net, ImportReport(vth, exact, err, meta_spec is not None)


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
    from randhet.data import load_dataset

    if dt is not None and not (dt > 0 and math.isfinite(dt)):
        raise UserError(f"--dt must be a positive number of seconds, got {dt}")
    graph = read_nir(path)
    gmeta = _meta(graph)
    _graph_layers(graph, dt or float(gmeta.get("dt", DEFAULT_DT)), str(path))  # refuse early
    data = encoding = None
    if config is not None:
        from randhet.config import load_config

        cfg = load_config(config)
        data = cfg["data"]
        enc = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["encoding"].items()}
        encoding = EncodingSpec(**enc)
    if data is None and "randhet_data" in gmeta:
        try:
            data = json.loads(str(gmeta["randhet_data"]))
        except ValueError:
            raise NetworkFileError(f"{path}: randhet_data metadata is not JSON") from None
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
