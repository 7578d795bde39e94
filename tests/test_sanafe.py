"""randhet's Loihi 1 time and energy model (the loihi1 profile's default ``sanafe`` basis)
against SANA-FE 2.2.9 itself, on the same networks, placement and input spikes
(tests/sanafe_run.py). SANA-FE is GPL-3.0: a test dependency only, skipped where absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from randhet.data import load_dataset
from randhet.decays import DecayDraw, deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.fit import check_fit
from randhet.deploy.timing import step_times
from randhet.export import export_run
from randhet.hardware import load_profile
from randhet.models.exported import encode_integers, model_from_export
from randhet.network import read_network
from randhet.train.trainer import train

pytest.importorskip("sanafe", reason="SANA-FE (GPL-3.0, a test dependency) is not installed")

from sanafe_run import run_stream  # noqa: E402  (tests/sanafe_run.py, needs sanafe)

SAMPLES = 8
TOLERANCE = 0.25  # the issue's: within 25 % on time per step and energy per sample


def one_draw(draws: list[DecayDraw], samples: int) -> list[DecayDraw]:
    """Sample 0's decays for every sample: SANA-FE runs the stream with one set of decays."""
    return [DecayDraw(d.current[:1].expand(samples, *d.current.shape[1:]).clone(),
                      d.voltage[:1].expand(samples, *d.voltage.shape[1:]).clone())
            for d in draws]


@pytest.mark.parametrize("layers", ['["dense:24"]', '["conv:4", "pool:2", "dense:10"]'])
def test_time_and_energy_agree_with_sanafe(layers: str, tmp_path: Path,
                                           make_tiny_config) -> None:
    # decays of 1: no state outlives a step (up to v / 4096), so SANA-FE's LIF (no truncation
    # of the decayed current, no reset between samples) gives Loihi's spikes and the check
    # compares the cost models on the same events
    cfg = make_tiny_config('encoding.kind="rate"', f"model.layers={layers}", "train.epochs=2",
                           "neuron.current_decay=1.0", "neuron.voltage_decay=1.0",
                           "neuron.sigma=0.0", "neuron.threshold=0.25")
    train(cfg, tmp_path, progress=False)
    net = read_network(export_run(tmp_path))
    profile = load_profile("loihi1")
    x = torch.as_tensor(load_dataset(net.data).x_test[:SAMPLES])
    inputs = encode_integers(model_from_export(net), x, seed=0)
    draws = one_draw(deployment_draws(net, SAMPLES, seed=0), SAMPLES)
    fit = check_fit(net, profile, draws)
    result = emulate(net, inputs, draws)
    ours = step_times(net, inputs, result, fit, profile, dynamic_joules=0.0)
    assert ours is not None and ours.basis == "sanafe"
    assert fit.fits  # sigma = 0: one decay profile per layer
    layers_placed = fit.layers
    steps = inputs.shape[-1]
    stream = inputs.reshape(SAMPLES, -1, steps).transpose(1, 0, 2).reshape(-1, SAMPLES * steps)
    theirs = run_stream(net, layers_placed, stream, draws)
    assert theirs.input_spikes == int(stream.sum())
    their_step = theirs.latency_s / (SAMPLES * steps + len(net.layers))
    their_energy = theirs.energy_j / SAMPLES
    assert abs(ours.time_per_step_s / their_step - 1) <= TOLERANCE
    assert abs(ours.dynamic_energy_joules_per_sample / their_energy - 1) <= TOLERANCE
    assert theirs.spikes == [int(r.sum()) for r in result.rasters]  # the same events
    assert all(n > 0 for n in theirs.spikes)
