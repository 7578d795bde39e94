"""netx HDF5 files, written with lava-dl's own block exporter plus a ``randhet`` group (the
reader, :func:`randhet.network.read_network`, needs no training code, as netx needs no slayer).

Layout (what lava-dl's ``netx.hdf5.Network`` reads): ``layer/<i>/{type, shape, weight,
neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}, ...}`` for ``dense``, ``conv``
(pooling is a depthwise ``conv`` with ``groups``) and ``flatten`` layers. Weights are even
integers in -256..254, decays the *mean* decays (0..4096), threshold ``vThMant = threshold*64``.
The ``randhet`` group carries what netx has no field for: the network spec as JSON (RandHet
sigma, distribution, resample mode, encoding and the first synapse's right shift), the data set
config (so deploy can rebuild the test split), the frozen per-neuron draw of ``resample =
"fixed"`` networks (``fixed_decays/<k>/{current,voltage}``, torch order), the profile binding
of profile-grouped RandHet (``profile_binding/<k>``: every neuron's profile 0..K-1 in its core,
(C, H, W) flat; K and the core size are in the spec) and the format version.

A direct-encoded network's first synapse shifts its sum right by ``input_bits``
(``EncodingSpec.input_shift``), which netx has no field for: stock netx would run such a file
without the shift and answer differently. Its file starts with one more layer, ``layer/0``, an
``input`` layer stock netx stops on with a one-line ValueError naming the reason (see
:func:`_write_stock_netx_refusal`); randhet's reader skips it. Rate and event files have no
shift and load in stock netx with randhet's answer at sigma = 0.

A Flex layer (static mask, average pool) is written as the ordinary ``conv`` it folds into
(weights ``Q(m * W_conv + (1 - m) * W_pool)``) and the stored ``spec`` is the deployed one
(:meth:`NetworkSpec.deployed`: the FlexSpec replaced by its ConvSpec), so deploy needs no Flex
code; the training spec is kept in the ``trained_spec`` attribute for provenance. Flex layers
that are not one convolution are refused by :func:`check_deployable`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from randhet.errors import NetworkFileError
from randhet.io import atomic_path
from randhet.layer_tokens import layer_token
from randhet.models.base import Flatten, Network
from randhet.models.exported import model_from_export
from randhet.network import FORMAT_VERSION, REFUSAL_ATTR, ExportedNetwork
from randhet.runs import open_run
from randhet.spec import FlexSpec, NetworkSpec


def export_run(run_dir: str | Path, out_path: str | Path | None = None,
               randomness_off: bool = False) -> Path:
    """Write ``network.net`` for a trained run folder; returns its path. ``randomness_off``
    writes the network with sigma = 0 (its weights with the mean decays, no redraws: what the
    protocol's twin check attacks), e.g. RandHet-trained weights deployed deterministically."""
    run = open_run(run_dir)
    check_deployable(run.spec)
    model = run.model()
    if randomness_off:
        model = model.randomness_off_twin()
    target = Path(out_path) if out_path else run.path / "network.net"
    fixed = None
    if model.spec.neuron.resample == "fixed":
        fixed = []
        for block in model.blocks:
            draw = block.neuron.draw(1, 1)
            fixed.append((_frozen(draw.current, block), _frozen(draw.voltage, block)))
    _write(target, model, run.config["data"], fixed)
    return target


def _bindings(model: Network) -> list[np.ndarray] | None:
    """Every spiking layer's profile binding (None unless profile-grouped)."""
    if model.spec.neuron.granularity != "profile":
        return None
    return [b.neuron.profile_binding.cpu().numpy().astype(np.int64) for b in model.blocks]


def write_network(net: ExportedNetwork, out_path: str | Path) -> Path:
    """Write an :class:`ExportedNetwork` (e.g. one imported from NIR) as a netx file.

    The same writer as :func:`export_run`: lava-dl's block exporter on the torch model that
    holds the network's integers (:func:`randhet.models.exported.model_from_export`), so the
    file reads back (:func:`read_network`) with the same integers and deploys like any other.
    """
    check_deployable(net.spec)
    fixed = None
    if net.spec.neuron.resample == "fixed":
        fixed = []
        for k, layer in enumerate(net.layers):
            if layer.fixed_current is None or layer.fixed_voltage is None:
                raise NetworkFileError(f"spiking layer {k} has no frozen draw (resample fixed)")
            fixed.append((np.asarray(layer.fixed_current, dtype=np.int64),
                          np.asarray(layer.fixed_voltage, dtype=np.int64)))
    target = Path(out_path)
    _write(target, model_from_export(net), net.data, fixed)
    return target


def _write(
    target: Path,
    model: Network,
    data: dict[str, Any],
    fixed: list[tuple[np.ndarray, np.ndarray]] | None,
) -> None:
    """Write ``model`` (a SpikingNetwork: lava-dl's blocks write their layers) atomically."""
    bindings = _bindings(model)
    shift = model.spec.encoding.input_shift
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        layers = f.create_group("layer")
        if shift:
            _write_stock_netx_refusal(layers.create_group("0"), model.spec, shift)
        for i, module in enumerate(model.layers):
            g = layers.create_group(str(i + (1 if shift else 0)))
            if isinstance(module, Flatten):
                g.create_dataset("type", (1,), "S10", [b"flatten"])
            else:
                module.export_hdf5(g)
        meta = f.create_group("randhet")
        meta.attrs["format_version"] = FORMAT_VERSION
        meta.attrs["spec"] = model.spec.deployed().to_json()
        if model.spec.deployed() != model.spec:
            meta.attrs["trained_spec"] = model.spec.to_json()
        meta.attrs["data"] = json.dumps(data, sort_keys=True)
        for k, (current, voltage) in enumerate(fixed or []):
            g = meta.create_group(f"fixed_decays/{k}")
            g.create_dataset("current", data=current)
            g.create_dataset("voltage", data=voltage)
        for k, binding in enumerate(bindings or []):
            meta.create_dataset(f"profile_binding/{k}", data=binding)


def stock_netx_refusal(shift: int) -> str:
    """The message stock netx stops with on a file whose first synapse shifts right."""
    return (f"randhet network file: its first synapse shifts its sum right by {shift} bits "
            "(direct encoding), which netx has no field for, so stock netx would compute "
            "something else; run it with randhet deploy")


def _write_stock_netx_refusal(g: h5py.Group, spec: NetworkSpec, shift: int) -> None:
    """Layer 0 of a file whose first synapse shifts its sum right (direct encoding): an
    ``input`` layer that stock netx reads first whatever its options and stops on, with
    :func:`stock_netx_refusal` as the message (its transform weight, which netx converts to an
    integer, is that text). Stock netx would otherwise run the file without the shift and give
    other answers; randhet's reader skips this layer."""
    g.create_dataset("type", (1,), "S10", [b"input"])
    g.create_dataset("shape", data=np.asarray(spec.input_shape[::-1], dtype=np.int64))
    neuron = g.create_group("neuron")  # a valid CUBA neuron, so that netx reaches the weight
    neuron.create_dataset("type", (1,), "S10", [b"CUBA"])
    for key, value in (("iDecay", 4096), ("vDecay", 4096), ("vThMant", 1), ("refDelay", 1)):
        neuron.create_dataset(key, data=np.asarray([value]))
    neuron.create_dataset("gradedSpike", data=np.asarray([True]))
    message = stock_netx_refusal(shift)
    g.create_dataset("weight", data=np.asarray([message.encode("ascii")]))
    g.attrs[REFUSAL_ATTR] = message


def check_deployable(spec: NetworkSpec) -> None:
    """Refuse (NetworkFileError, one line) a network with a layer Loihi synapses cannot run.

    A Flex layer deploys only with a static mask and the average pool path (then it is exactly
    one convolution); ``eta`` noise is training-only and does not matter here.
    """
    for i, ly in enumerate(spec.layers):
        if not isinstance(ly, FlexSpec) or ly.deployable:
            continue
        gate = ly.gate if ly.mask == "static" else None
        fix = replace(ly, mask="static", pool="avg", gate=gate)
        if ly.mask == "dynamic":
            why = "an input-dependent mask, which Loihi synapses cannot compute"
        elif ly.mask == "pos":
            why = ("a per-position mask, whose folded kernel would vary with position (not a "
                   "convolution)")
        else:
            why = "a max-pool path, which is not linear and Loihi synapses cannot compute"
        raise NetworkFileError(
            f"layer {i} ({layer_token(ly)}) has {why}; use {layer_token(fix)} (static mask, "
            "avg pool) to deploy"
        )


def _frozen(d: Any, block: Any) -> np.ndarray:
    """A frozen draw as int64 [*noise_shape] (an unrandomized [1] mean fills the neurons)."""
    arr = d.detach().cpu().numpy().astype(np.int64)
    if arr.shape == (1,):
        return np.full(tuple(block.neuron.shape), arr[0], dtype=np.int64)
    return arr[0]  # [1, *noise_shape] -> [*noise_shape]
