"""The NIR matrix's trained networks and the tools' versions, shared by ``nir_matrix.py`` and
``neurobench_compare.py`` (a helper module, not a script).

:func:`trained_network` trains a sigma = 0 digits network of :data:`TRAINED` for 4 epochs and
exports it; :func:`versions` records the versions of the NIR tools installed here.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import harness  # noqa: F401  (the bootstrap: randhet from the checkout)
import numpy as np

from randhet.config import load_config
from randhet.deploy.pipeline import prepare
from randhet.export.netx import export_run
from randhet.network import ExportedNetwork

PACKAGES = {"snnTorch": "snntorch", "Norse": "norse", "Sinabs": "sinabs",
            "Rockpool": "rockpool", "NIR": "nir"}
SAMPLES = 100
TRAINED = {  # kind -> config overrides of a digits run (sigma 0, direct encoding)
    "dense": ['model.layers=["dense:128"]', "encoding.timesteps=16"],
    "conv+pool": ['model.layers=["conv:4:k3", "pool:2"]', "encoding.timesteps=8"],
}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, package in PACKAGES.items():
        try:
            out[name] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def trained_network(kind: str, work: Path) -> tuple[ExportedNetwork, np.ndarray, np.ndarray]:
    """Train a sigma = 0 digits network (4 epochs), export it; (network, integer inputs
    [S, *shape, T], labels) for the first SAMPLES test samples."""
    from randhet.train.trainer import train  # reason: training only for these two networks

    out = work / kind.replace("+", "_")
    cfg = load_config(None, [*TRAINED[kind], "train.epochs=4",
                             "train.batch_size=32", "train.lr=0.01", "neuron.sigma=0.0",
                             "train.device=cpu"])
    train(cfg, out, progress=False)
    prep = prepare(export_run(out), samples=SAMPLES, profile="loihi2", seed=0)
    return prep.net, np.asarray(prep.inputs), np.asarray(prep.labels)
