"""The deployed network: what an export writes and every backend runs, in Loihi integers.

Export (:mod:`randhet.export.netx`, :mod:`randhet.export.nir_import`) writes it; deploy, the
emulator, profiling and the fit check read it back with :func:`read_network`, which needs
neither the training code nor Lava (see :mod:`randhet.export.netx` for the file's layout).
It holds the network description (:class:`~randhet.spec.NetworkSpec`, Flex layers already
folded into convolutions) and, per
spiking layer, the integer weights, mean decays, threshold mantissa, for ``resample =
"fixed"`` networks the frozen per-neuron draw and, for profile-grouped RandHet
(``granularity = "profile"``), every neuron's decay profile within its core.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from randhet.deployed import ExportedLayer, ExportedNetwork
from randhet.errors import NetworkFileError
from randhet.spec import ConvSpec, DenseSpec, FlattenSpec, NetworkSpec, NeuronSpec
from randhet.stock_netx import read_stock

__all__ = ["ExportedLayer", "ExportedNetwork", "read_network"]

FORMAT_VERSION = 2  # of the randhet group in a netx file
# the attribute of the extra layer 0 that makes stock netx stop on a direct-encoded file
# (randhet.export.netx writes it; the reader skips that layer)
REFUSAL_ATTR = "randhet_stock_netx_refusal"


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
    """Read a netx file: randhet's, or a stock lava-dl one (:mod:`randhet.stock_netx`); any
    problem is a NetworkFileError with a one-line message."""
    p = Path(path)
    with _open(p) as f:
        if "randhet" not in f:  # a file lava-dl wrote, not randhet
            return read_stock(p, f)
        try:
            meta = f["randhet"]
            version = int(meta.attrs["format_version"])
            spec = NetworkSpec.from_json(meta.attrs["spec"])
            data = json.loads(meta.attrs["data"])
        except (KeyError, ValueError, TypeError) as exc:
            raise NetworkFileError(f"{p}: no valid randhet metadata ({exc})") from None
        if version != FORMAT_VERSION:
            raise NetworkFileError(f"{p}: format version {version}, expected {FORMAT_VERSION}")
        head = f["layer"].get("0") if "layer" in f else None
        first = 1 if head is not None and REFUSAL_ATTR in head.attrs else 0  # skipped
        if "layer" not in f or len(f["layer"]) != len(spec.layers) + first:
            raise NetworkFileError(f"{p}: layer group does not match the spec")
        if first and not spec.encoding.input_shift:
            raise NetworkFileError(f"{p}: a stock-netx refusal layer, but no input shift")
        layers = []
        for i, ls in enumerate(spec.layers):  # i: the spec's index; the file's is i + first
            try:
                kind = f["layer"][str(i + first)]["type"][0].decode()
            except (KeyError, IndexError, AttributeError) as exc:
                raise NetworkFileError(f"{p}: layer {i} is malformed ({exc})") from None
            if kind != ls.kind:
                raise NetworkFileError(f"{p}: layer {i} is {kind!r}, the spec says {ls.kind!r}")
            if isinstance(ls, FlattenSpec):
                continue
            layers.append(_read_layer(p, f["layer"][str(i + first)], i, ls, meta, len(layers),
                                      spec.neuron))
    return ExportedNetwork(spec, tuple(layers), data, p)


def _read_layer(
    p: Path, g: h5py.Group, i: int, ls: DenseSpec | ConvSpec, meta: h5py.Group, k: int,
    neuron_spec: NeuronSpec,
) -> ExportedLayer:
    if isinstance(ls, DenseSpec):
        expected: tuple[int, ...] = (ls.out_features, ls.in_features)
    else:
        expected = (ls.out_channels, ls.in_shape[0] // ls.groups, ls.kernel, ls.kernel)
    try:
        raw = np.asarray(g["weight"][()], dtype=np.float64)
        neuron = g["neuron"]
        fixed = meta.get(f"fixed_decays/{k}")
        bound = meta.get(f"profile_binding/{k}")
        layer = ExportedLayer(
            spec=ls,
            weight=np.rint(raw).astype(np.int64).reshape(expected),
            current_decay=_scalar(neuron["iDecay"]),
            voltage_decay=_scalar(neuron["vDecay"]),
            threshold_mant=_scalar(neuron["vThMant"]),
            fixed_current=None if fixed is None else np.asarray(fixed["current"][()]),
            fixed_voltage=None if fixed is None else np.asarray(fixed["voltage"][()]),
            profile_binding=None if bound is None else np.asarray(bound[()], dtype=np.int64),
        )
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetworkFileError(f"{p}: layer {i} is malformed ({exc})") from None
    if not np.array_equal(raw.reshape(expected), layer.weight):
        raise NetworkFileError(f"{p}: layer {i} weights are not integers")
    if layer.weight.min(initial=0) < -256 or layer.weight.max(initial=0) > 254:
        raise NetworkFileError(f"{p}: layer {i} weights exceed 8 bits (-256..254)")
    if not (0 <= layer.current_decay <= 4096 and 0 <= layer.voltage_decay <= 4096):
        raise NetworkFileError(f"{p}: layer {i} decays are outside 0..4096")
    _check_binding(p, i, layer, neuron_spec)
    return layer


def _check_binding(p: Path, i: int, layer: ExportedLayer, spec: NeuronSpec) -> None:
    """A profile-grouped network needs one profile in 0..K-1 per neuron in every layer."""
    b = layer.profile_binding
    if spec.granularity != "profile":
        if b is not None:
            raise NetworkFileError(f"{p}: layer {i} has a profile binding, the spec's "
                                   f"granularity is {spec.granularity!r}")
        return
    if b is None or b.shape != (layer.neurons,):
        raise NetworkFileError(f"{p}: layer {i} needs a profile binding of {layer.neurons} "
                               "neurons (granularity 'profile')")
    if b.min(initial=0) < 0 or b.max(initial=0) >= spec.profiles:
        raise NetworkFileError(f"{p}: layer {i} binds neurons to profiles outside "
                               f"0..{spec.profiles - 1}")
