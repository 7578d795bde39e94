"""NIR export: a deployed randhet network as a NIR graph (mapping:
:mod:`randhet.export.nir_mapping`)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from randhet.decays import deployment_draws
from randhet.errors import UserError
from randhet.export.netx import export_run
from randhet.export.nir_mapping import (
    DEFAULT_DT,
    NIR_FORMAT,
    load_nir,
    tau_from_decay,
)
from randhet.network import ExportedLayer, ExportedNetwork, read_network
from randhet.spec import (
    WEIGHT_SCALE,
    DenseSpec,
    FlattenSpec,
    NeuronSpec,
)


def _draws(net: ExportedNetwork, draw: str | int | None) -> tuple[str, list[tuple[Any, Any]]]:
    """Per spiking layer (current, voltage) integer decays [*neuron shape] and the draw label."""
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


def _binding_metadata(neuron: NeuronSpec, layer: ExportedLayer) -> dict[str, Any]:
    """Profile-grouped RandHet: K, the core size and every neuron's profile in its core."""
    if neuron.granularity != "profile" or layer.profile_binding is None:
        return {}
    return {"randhet_profiles": int(neuron.profiles), "randhet_core_size": int(neuron.core_size),
            "randhet_profile_binding": np.asarray(layer.profile_binding, dtype=np.int64)}


POOL_AS = ("avgpool", "conv")


def floor_bias(input_shift: int) -> float:
    """The mean drive, in SLAYER units, that the first synapse's floor of a direct-encoded
    network drops: ``floor(W . x / 2**b)`` with even integer weights leaves an even residue
    ``0, 2, .., 2**b - 2`` of ``2**b``, on average ``(2**(b-1) - 1) / 2**b`` integer units,
    each ``1 / 64`` SLAYER unit; 0 for ``b = 0`` (binary input: no floor)."""
    if input_shift <= 0:
        return 0.0
    return ((1 << (input_shift - 1)) - 1) / (1 << input_shift) / WEIGHT_SCALE


def to_nir(net: ExportedNetwork, dt: float = DEFAULT_DT, draw: str | int | None = None,
           pool_as: str = "avgpool", compensate_floor: bool = False) -> Any:
    """The NIR graph of an exported network (see the module docstring for the mapping).

    ``pool_as``: ``avgpool`` writes a ``pool:K`` layer as NIR's ``AvgPool2d`` (its weight folded
    into the next ``CubaLIF``'s ``w_in``); ``conv`` as the depthwise convolution it is on Loihi,
    written out as a ``groups = 1`` ``Conv2d`` (each output channel reads only its own channel,
    with the pool's weight), for tools that map no ``AvgPool2d`` (Norse 1.1.0). Both read back
    into the same integers.

    ``compensate_floor``: give the first synapse of a direct-encoded network the bias
    ``-floor_bias(input_bits)`` (the floor's mean loss, which a float simulation does not
    have), marked in its metadata (``randhet_floor_bias``) so that randhet's importer takes
    exactly that bias back out; nothing for binary input."""
    if net.stock:
        raise UserError(f"{net.path}: NIR export takes randhet's own files; a stock netx file's "
                        "biases and input layer have no NIR mapping in randhet yet")
    nir = load_nir()
    if not (dt > 0 and math.isfinite(dt)):
        raise UserError(f"--dt must be a positive number of seconds, got {dt}")
    if pool_as not in POOL_AS:
        raise UserError(f"--pool-as must be one of {', '.join(POOL_AS)}, got {pool_as!r}")
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
        elif ls.pool and pool_as == "conv":  # each output channel reads its own channel
            if np.ptp(layer.weight) != 0:
                raise UserError(f"layer {i} (pool:{ls.kernel}) has unequal weights")
            name = f"{i}_conv"
            full = np.zeros((ls.out_channels, ls.out_channels, ls.kernel, ls.kernel))
            for c in range(ls.out_channels):  # groups = 1: NIR 1.0.8 infers no grouped types
                full[c, c] = w[c, 0]
            nodes[name] = nir.Conv2d(
                input_shape=(ls.in_shape[1], ls.in_shape[2]), weight=full,
                stride=ls.strides, padding=ls.paddings,
                dilation=(1, 1), groups=1, bias=np.zeros(ls.out_channels),
            )
        elif ls.pool:
            if np.ptp(layer.weight) != 0:
                raise UserError(f"layer {i} (pool:{ls.kernel}) has unequal weights")
            name = f"{i}_avgpool"
            nodes[name] = nir.AvgPool2d(
                kernel_size=np.array([ls.kernel] * 2), stride=np.array(ls.strides),
                padding=np.array(ls.paddings))
            gain = float(layer.weight.flat[0]) / WEIGHT_SCALE * ls.kernel**2  # into w_in
        else:
            name = f"{i}_conv"
            nodes[name] = nir.Conv2d(
                input_shape=(ls.in_shape[1], ls.in_shape[2]), weight=w,
                stride=ls.strides, padding=ls.paddings,
                dilation=(1, 1), groups=1, bias=np.zeros(ls.out_channels),
            )
        order.append(name)
        if k == 0 and compensate_floor and spec.encoding.input_shift > 0:
            bias = floor_bias(spec.encoding.input_shift)
            nodes[name].bias = np.full(ls.out_features if isinstance(ls, DenseSpec)
                                       else ls.out_channels, -bias)
            nodes[name].metadata = {"randhet_floor_bias": bias}
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
                **_binding_metadata(neuron, layer),
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
    net: ExportedNetwork, path: str | Path, dt: float = DEFAULT_DT, draw: str | int | None = None,
    pool_as: str = "avgpool", compensate_floor: bool = False,
) -> Path:
    """Write ``to_nir(net, dt, draw, pool_as, compensate_floor)`` to ``path`` (NIR's HDF5)."""
    graph = to_nir(net, dt, draw, pool_as, compensate_floor)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    load_nir().write(target, graph)
    return target


def export_nir(
    source: str | Path,
    out_path: str | Path | None = None,
    dt: float = DEFAULT_DT,
    draw: str | int | None = None,
    pool_as: str = "avgpool",
    compensate_floor: bool = False,
) -> Path:
    """``network.nir`` for a trained run folder (default: RUN_DIR/network.nir) or a netx file
    (default: beside it)."""
    src = Path(source)
    if src.is_file():
        net = read_network(src)
        default = src.with_suffix(".nir")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            net = read_network(export_run(src, Path(tmp) / "network.net"))
        default = src / "network.nir"
    return write_nir(net, Path(out_path) if out_path else default, dt, draw, pool_as,
                     compensate_floor)
