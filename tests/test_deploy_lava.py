"""Deployment on Lava's bit-accurate simulator: bit-exact with the torch model, per-sample
fresh decays, reproducible, and the runtime always stopped."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

from randhet.data import load_dataset
from randhet.decays import deployment_draws, draw_network
from randhet.deploy.lava_backend import run_lava
from randhet.deploy.pipeline import deploy
from randhet.deploy.reference import reference_rasters
from randhet.export import export_run
from randhet.models.exported import model_from_export
from randhet.network import read_network
from randhet.spec import NeuronSpec
from randhet.train.trainer import train

pytestmark = pytest.mark.lava

REQUIRED = {
    "backend", "samples", "accuracy", "bit_exact_fraction", "activation_sparsity", "synops",
    "energy", "profile", "layers", "tie_rate", "silent_rate", "decision_rule",
}


def test_deploy_is_bit_exact_and_reports_every_field(tiny_run: Path, tmp_path: Path) -> None:
    report = deploy(tiny_run / "network.net", samples=40, out_dir=tmp_path,
                    progress=False).to_dict()
    on_disk = json.loads((tmp_path / "deploy.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert REQUIRED <= set(report)
    assert report["backend"] == "lava" and report["samples"] == 40
    assert report["bit_exact_fraction"] == 1.0
    assert report["emulator_bit_exact_fraction"] == 1.0
    assert report["accuracy"] == report["reference_accuracy"]
    assert report["accuracy"] > 0.5  # ten classes: chance is 0.1
    assert 0.0 < report["activation_sparsity"] < 1.0
    assert 0 < report["synops"]["effective"] < report["synops"]["dense"]
    assert report["energy"]["joules_per_sample"] > 0
    assert "estimate" in report["energy"]["basis"] and report["energy"]["profile"] == "loihi2"
    assert [layer["name"] for layer in report["layers"]] == ["0:dense:24", "1:dense:10"]
    assert [layer["neurons"] for layer in report["layers"]] == [24, 10]
    assert report["decay_draw"]["distinct_current_decays_layer0"] > 24
    assert (tmp_path / "deploy.png").stat().st_size > 0


def test_same_sample_repeated_gets_a_fresh_draw_each_time_on_lava(tiny_run: Path) -> None:
    net = read_network(tiny_run / "network.net")
    model = model_from_export(net)
    x = torch.as_tensor(load_dataset(net.data).x_test[:1]).expand(6, 1, 8, 8)
    inputs = model.encoder.to_integer(model.encoder(x)).numpy()
    shapes = model.layer_shapes()
    runs = {}
    for sigma in (1.0, 0.0):
        neuron = NeuronSpec(**{**net.spec.neuron.__dict__, "sigma": sigma})
        draws = draw_network(neuron, 6, shapes, seed=3)
        lava = run_lava(net, inputs, draws).rasters
        ref = reference_rasters(model, inputs, draws)
        for a, b in zip(lava, ref, strict=True):
            assert np.array_equal(a, b)
        runs[sigma] = np.concatenate([r.reshape(6, -1) for r in lava], axis=1)
    assert len({r.tobytes() for r in runs[1.0]}) >= 4  # fresh draws: the rasters differ
    assert len({r.tobytes() for r in runs[0.0]}) == 1  # no randomness: identical rasters


def test_rate_encoded_network_deploys_bit_exactly(tmp_path: Path, make_tiny_config) -> None:
    cfg = make_tiny_config("encoding.kind=\"rate\"", "train.epochs=2", "neuron.sigma=0.7")
    train(cfg, tmp_path, progress=False)
    export_run(tmp_path)
    report = deploy(tmp_path / "network.net", samples=20, seed=5, progress=False).to_dict()
    assert report["bit_exact_fraction"] == 1.0
    again = deploy(tmp_path / "network.net", samples=20, seed=5, progress=False).to_dict()
    for key in ("accuracy", "activation_sparsity", "synops", "layers"):
        assert report[key] == again[key]  # the same seed reproduces the deployment


def test_runtime_is_stopped_when_a_run_fails_midway(tiny_run: Path) -> None:
    net = read_network(tiny_run / "network.net")
    model = model_from_export(net)
    x = torch.as_tensor(load_dataset(net.data).x_test[:6])
    inputs = model.encoder.to_integer(model.encoder(x)).numpy()
    draws = deployment_draws(net, 6, seed=0)

    def fail(done: int) -> None:
        raise RuntimeError(f"stop after {done} samples")

    with pytest.raises(RuntimeError, match="stop after"):
        run_lava(net, inputs, draws, chunk_samples=2, on_progress=fail)
    assert multiprocessing.active_children() == []


VARIANTS = {
    # direct (graded) input into a conv: Lava's Conv ignores the weight exponent, ShiftedConv
    # applies it; pooling as a fixed depthwise conv; strided conv; flatten into dense.
    "conv_pool_direct": ['model.layers=["conv:4", "pool:2", "conv:6:s2", "dense:12"]'],
    "conv_rate_per_step_per_channel": [
        'model.layers=["conv:4:s2", "dense:12"]', 'encoding.kind="rate"',
        'neuron.resample="step"', 'neuron.granularity="channel"',
    ],
    "dense_fixed_gaussian": [
        'model.layers=["dense:12"]', 'neuron.resample="fixed"',
        'neuron.distribution="gaussian"', "neuron.sigma=0.1",
    ],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_layer_type_and_draw_mode_deploys_bit_exactly(
    variant: str, tmp_path: Path, make_tiny_config
) -> None:
    cfg = make_tiny_config(*VARIANTS[variant], "train.epochs=1", "encoding.timesteps=6")
    train(cfg, tmp_path, progress=False)
    export_run(tmp_path)
    report = deploy(tmp_path / "network.net", samples=10, seed=2, progress=False).to_dict()
    assert report["bit_exact_fraction"] == 1.0
    assert report["emulator_bit_exact_fraction"] == 1.0
    assert sum(layer["spikes_per_sample"] for layer in report["layers"]) > 0
    assert report["decay_draw"]["resample"] == cfg["neuron"]["resample"]


def test_conv_randhet_network_learns_digits_and_deploys_bit_exactly(tmp_path: Path) -> None:
    from randhet.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / "digits-conv.toml")
    metrics = train(cfg, tmp_path, progress=False)
    assert metrics.best_val_accuracy >= 0.85  # ties and silent outputs count as wrong
    export_run(tmp_path)
    report = deploy(tmp_path / "network.net", samples=40, progress=False).to_dict()
    assert report["bit_exact_fraction"] == 1.0
    assert report["accuracy"] >= 0.8
    assert [layer["name"] for layer in report["layers"]] == ["0:conv:12:s2", "1:conv:24:s2",
                                                            "2:dense:64", "3:dense:10"]


@pytest.mark.parametrize("steps", [54, 63])
def test_long_samples_come_back_exactly_from_lava(tiny_run: Path, steps: int) -> None:
    """Rasters of 54 and 63 steps per sample: Lava reads Vars back as float64, so a raster
    packed into one int64 lost every step from 53 on (0 of 432 spikes at T = 54)."""
    net = read_network(tiny_run / "network.net")
    model = model_from_export(net)
    x = torch.as_tensor(load_dataset(net.data).x_test[:3])
    short = model.encoder.to_integer(model.encoder(x)).numpy()  # direct: one frame repeated
    inputs = np.repeat(short[..., :1], steps, axis=-1)
    draws = draw_network(net.spec.neuron, 3, model.layer_shapes(), seed=11)
    lava = run_lava(net, inputs, draws).rasters
    ref = reference_rasters(model, inputs, draws)
    assert ref[0][..., 53:].any()  # the late steps spike, so the check can fail
    for a, b in zip(lava, ref, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)
