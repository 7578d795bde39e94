"""netx HDF5 files: written with lava-dl's own block exporter, plus a ``randhet`` group.

Layout (what lava-dl's ``netx.hdf5.Network`` reads): ``layer/<i>/{type, shape, inFeatures,
outFeatures, weight, neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}}``. Weights
are even integers in -256..254, decays integers 0..4096 (the *mean* decays), threshold
``vThMant = threshold * 64``. The ``randhet`` group carries what netx has no field for: the
network spec as JSON (RandHet sigma and draw, encoding and the first synapse's right shift),
the data set config (so deploy can rebuild the test split) and the format version.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from randhet.errors import NetworkFileError
from randhet.spec import NetworkSpec

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExportedLayer:
    """One deployed layer in Loihi integers."""

    weight: np.ndarray  # [out, in] int64, even, -256..254
    current_decay: int  # mean iDecay, 0..4096
    voltage_decay: int  # mean vDecay, 0..4096
    threshold_mant: int  # vThMant

    @property
    def neurons(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class ExportedNetwork:
    spec: NetworkSpec
    layers: tuple[ExportedLayer, ...]
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
    cfg = tomllib.loads((run / "config.toml").read_text())
    target = Path(out_path) if out_path else run / "network.net"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".net.tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            layers = f.create_group("layer")
            for i, block in enumerate(model.blocks):
                block.export_hdf5(layers.create_group(str(i)))
            meta = f.create_group("randhet")
            meta.attrs["format_version"] = FORMAT_VERSION
            meta.attrs["spec"] = model.spec.to_json()
            meta.attrs["data"] = json.dumps(cfg["data"], sort_keys=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _scalar(ds: Any) -> int:
    return int(np.asarray(ds[()]).reshape(-1)[0])


def read_network(path: str | Path) -> ExportedNetwork:
    """Read a randhet netx file; any problem is a NetworkFileError with a one-line message."""
    p = Path(path)
    if not p.is_file():
        raise NetworkFileError(f"network file not found: {p}")
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise NetworkFileError(f"{p}: not an HDF5 file (corrupt or wrong file)") from None
    with f:
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
            g = f["layer"][str(i)]
            try:
                kind = g["type"][0].decode()
                weight = np.asarray(g["weight"][()])
                neuron = g["neuron"]
                layer = ExportedLayer(
                    weight=np.rint(weight).astype(np.int64).reshape(ls.out_features, -1),
                    current_decay=_scalar(neuron["iDecay"]),
                    voltage_decay=_scalar(neuron["vDecay"]),
                    threshold_mant=_scalar(neuron["vThMant"]),
                )
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                raise NetworkFileError(f"{p}: layer {i} is malformed ({exc})") from None
            if kind != ls.kind or layer.weight.shape != (ls.out_features, ls.in_features):
                raise NetworkFileError(f"{p}: layer {i} does not match the spec")
            if not np.array_equal(weight, np.rint(weight)) or np.abs(layer.weight).max() > 256:
                raise NetworkFileError(f"{p}: layer {i} weights are not 8-bit integers")
            layers.append(layer)
    return ExportedNetwork(spec, tuple(layers), data, p)
