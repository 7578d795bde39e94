"""Briefly trained, exported digits networks and their deployment inputs, shared by
``deploy_speed.py`` and ``emulator_floor.py`` (a helper module, not a script).

:func:`build` trains a network for :data:`EPOCHS` epoch (speed does not depend on accuracy) and
exports it (netx HDF5); :func:`prepare` makes the integer inputs and decay draws of its first
test samples exactly as :func:`randhet.deploy.pipeline.deploy` does (``model.encoder`` on the
test split, :func:`~randhet.decays.deployment_draws` with seed :data:`SEED`).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import harness
import numpy as np

from randhet.config import load_config
from randhet.data import load_dataset
from randhet.decays import DecayDraw
from randhet.deploy.pipeline import prepare as deploy_prepare
from randhet.export import export_run
from randhet.network import ExportedNetwork, read_network
from randhet.train.trainer import train

SEED = 1  # decay-draw seed, as `randhet deploy` defaults to
EPOCHS = 1


def build(name: str, overrides: list[str], tmp: Path) -> tuple[ExportedNetwork, float]:
    """Train for EPOCHS epochs and export; the network and the seconds it took."""
    def train_and_export() -> ExportedNetwork:
        cfg = load_config(None, [f"name={name}", f"train.epochs={EPOCHS}", "train.device=cpu",
                                 *overrides])
        run_dir = tmp / name
        with contextlib.redirect_stdout(sys.stderr):
            train(cfg, run_dir, progress=False)
        return read_network(export_run(run_dir))

    seconds, net = harness.timed(train_and_export)
    return net, seconds


def prepare(net: ExportedNetwork, n: int) -> tuple[np.ndarray, list[DecayDraw]]:
    """Integer inputs [n, *input, T] and decay draws for the first n test samples, as
    ``deploy()`` makes them."""
    data = load_dataset(net.data, timesteps=net.spec.encoding.timesteps)
    prep = deploy_prepare(net.path, samples=min(n, len(data.x_test)), profile="loihi2", seed=SEED)
    return prep.inputs, prep.draws
