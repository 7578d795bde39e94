"""netx HDF5 files: written with lava-dl's own block exporter, plus a ``randhet`` group.

Layout (what lava-dl's ``netx.hdf5.Network`` reads): ``layer/<i>/{type, shape, weight,
neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}, ...}`` for ``dense``, ``conv``
(pooling is a depthwise ``conv`` with ``groups``) and ``flatten`` layers. Weights are even
integers in -256..254, decays the *mean* decays (0..4096), threshold ``vThMant = threshold*64``.
The ``randhet`` group carries what netx has no field for: the network spec as JSON (RandHet
sigma, distribution, resample mode, encoding and the first synapse's right shift), the data set
config (so deploy can rebuild the test split), the frozen per-neuron draw of ``resample =
"fixed"`` networks (``fixed_decays/<k>/{current,voltage}``, torch order) and the format version.

A Flex layer (static mask, average pool) is written as the ordinary ``conv`` it folds into
(weights ``Q(m * W_conv + (1 - m) * W_pool)``) and the stored ``spec`` is the deployed one
(:meth:`NetworkSpec.deployed`: the FlexSpec replaced by its ConvSpec), so deploy needs no Flex
code; the training spec is kept in the ``trained_spec`` attribute for provenance. Flex layers
that are not one convolution are refused by :func:`check_deployable`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from randhet.errors import NetworkFileError
from randhet.spec import ConvSpec, DenseSpec, FlattenSpec, FlexSpec, NetworkSpec

FORMAT_VERSION = 2


@dataclass(frozen=True)
class ExportedLayer:
    """One deployed spiking layer in Loihi integers (torch layouts)."""

    spec: DenseSpec | ConvSpec
    weight: np.ndarray  # int64; dense [out, in], conv [out, in/groups, k, k]
    current_decay: int  # mean iDecay, 0..4096
    voltage_decay: int  # mean vDecay, 0..4096
    threshold_mant: int  # vThMant
    fixed_current: np.ndarray | None = None  # frozen draw [*noise_shape] ("fixed" resample)
    fixed_voltage: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Neuron shape: (n,) or (C, H, W)."""
        return tuple(self.spec.out_shape)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ExportedNetwork:
    spec: NetworkSpec
    layers: tuple[ExportedLayer, ...]  # spiking layers only
    data: dict[str, Any]
    path: Path


def export_run(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write ``network.net`` for a trained run folder; returns its path."""
    import tomllib

    from randhet.train.trainer import load_trained

    run = Path(run_dir)
    for name in ("spec.json", "network.pt", "config.toml"):
        if not (run / name).is_file():
            raise NetworkFileError(f"{run} is not a trained run folder ({name} is missing)")
    model = load_trained(run)
    check_deployable(model.spec)
    cfg = tomllib.loads((run / "config.toml").read_text())
    target = Path(out_path) if out_path else run / "network.net"
    fixed = None
    if model.spec.neuron.resample == "fixed":
        fixed = []
        for block in model.blocks:
            draw = block.neuron.draw(1, 1)
            fixed.append((_frozen(draw.current, block), _frozen(draw.voltage, block)))
    _write(target, model, cfg["data"], fixed)
    return target


def write_network(net: ExportedNetwork, out_path: str | Path) -> Path:
    """Write an :class:`ExportedNetwork` (e.g. one imported from NIR) as a netx file.

    The same writer as :func:`export_run`: lava-dl's block exporter on the torch model that
    holds the network's integers (:func:`randhet.deploy.reference.model_from_export`), so the
    file reads back (:func:`read_network`) with the same integers and deploys like any other.
    """
    from randhet.deploy.reference import model_from_export

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
    model: Any,
    data: dict[str, Any],
    fixed: list[tuple[np.ndarray, np.ndarray]] | None,
) -> None:
    """Write ``model`` (a SpikingNetwork) atomically to ``target``."""
    from randhet.train.model import Flatten

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".net.tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            layers = f.create_group("layer")
            for i, module in enumerate(model.layers):
                g = layers.create_group(str(i))
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
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
            f"layer {i} ({ly.token}) has {why}; use {fix.token} (static mask, avg pool) to deploy"
        )


def _frozen(d: Any, block: Any) -> np.ndarray:
    """A frozen draw as int64 [*noise_shape] (an unrandomized [1] mean fills the neurons)."""
    arr = d.detach().cpu().numpy().astype(np.int64)
    if arr.shape == (1,):
        return np.full(tuple(block.neuron.shape), arr[0], dtype=np.int64)
    return arr[0]  # [1, *noise_shape] -> [*noise_shape]


def _scalar(ds: Any) -> int:
    return int(np.asarray(ds[()]).reshape(-1)[0])


def _open(p: Path) -> h5py.File:
    if not p.is_file():
        raise NetworkFileError(f"network file not found: {p}")
    try:
        return h5py.File(p, "r")
    except OSError:
        raise NetworkFileError(f"{p}: not an HDF5 file (corrupt or wrong file)") from None


def read_network(path: str | Path) -> ExportedNetwork:
    """Read a randhet netx file; any problem is a NetworkFileError with a one-line message."""
    p = Path(path)
    with _open(p) as f:
        try:
            meta = f["randhet"]
            version = int(meta.attrs["format_version"])
            spec = NetworkSpec.from_json(meta.attrs["spec"])
            data = json.loads(meta.attrs["data"])
        except (KeyError, ValueError, TypeError) as exc:
            raise NetworkFileError(f"{p}: no valid randhet metadata ({exc})") from None
        if version != FORMAT_VERSION:
            raise NetworkFileError(f"{p}: format version {version}, expected {FORMAT_VERSION}")
        if "layer" not in f or len(f["layer"]) != len(spec.layers):
            raise NetworkFileError(f"{p}: layer group does not match the spec")
        layers = []
        for i, ls in enumerate(spec.layers):
            try:
                kind = f["layer"][str(i)]["type"][0].decode()
            except (KeyError, IndexError, AttributeError) as exc:
                raise NetworkFileError(f"{p}: layer {i} is malformed ({exc})") from None
            if kind != ls.kind:
                raise NetworkFileError(f"{p}: layer {i} is {kind!r}, the spec says {ls.kind!r}")
            if isinstance(ls, FlattenSpec):
                continue
            layers.append(_read_layer(p, f["layer"][str(i)], i, ls, meta, len(layers)))
    return ExportedNetwork(spec, tuple(layers), data, p)


def _read_layer(
    p: Path, g: h5py.Group, i: int, ls: DenseSpec | ConvSpec, meta: h5py.Group, k: int
) -> ExportedLayer:
    if isinstance(ls, DenseSpec):
        expected: tuple[int, ...] = (ls.out_features, ls.in_features)
    else:
        expected = (ls.out_channels, ls.in_shape[0] // ls.groups, ls.kernel, ls.kernel)
    try:
        raw = np.asarray(g["weight"][()], dtype=np.float64)
        neuron = g["neuron"]
        fixed = meta.get(f"fixed_decays/{k}")
        layer = ExportedLayer(
            spec=ls,
            weight=np.rint(raw).astype(np.int64).reshape(expected),
            current_decay=_scalar(neuron["iDecay"]),
            voltage_decay=_scalar(neuron["vDecay"]),
            threshold_mant=_scalar(neuron["vThMant"]),
            fixed_current=None if fixed is None else np.asarray(fixed["current"][()]),
            fixed_voltage=None if fixed is None else np.asarray(fixed["voltage"][()]),
        )
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetworkFileError(f"{p}: layer {i} is malformed ({exc})") from None
    if not np.array_equal(raw.reshape(expected), layer.weight):
        raise NetworkFileError(f"{p}: layer {i} weights are not integers")
    if layer.weight.min(initial=0) < -256 or layer.weight.max(initial=0) > 254:
        raise NetworkFileError(f"{p}: layer {i} weights exceed 8 bits (-256..254)")
    if not (0 <= layer.current_decay <= 4096 and 0 <= layer.voltage_decay <= 4096):
        raise NetworkFileError(f"{p}: layer {i} decays are outside 0..4096")
    return layer
