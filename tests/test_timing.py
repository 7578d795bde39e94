"""The time-per-step model (randhet/deploy/timing.py) against the same formula written out by
hand, step by step, on a small stock netx network's emulated run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.fit import check_fit
from randhet.deploy.timing import step_times
from randhet.errors import ProfileError
from randhet.hardware import EventCosts, load_profile
from randhet.network import read_network


def _dense_file(path: Path) -> Path:
    """Two dense layers, 6 -> 4 -> 3, with zero weights, T = 8."""
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        for i, (n_in, n_out) in enumerate([(6, 4), (4, 3)]):
            g = layers.create_group(str(i))
            w = rng.integers(-40, 80, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.7)
            for key, value in {"type": [b"dense"], "shape": [n_out, 1, 1], "inFeatures": n_in,
                               "outFeatures": n_out, "weight": w.astype(np.float32)}.items():
                g.create_dataset(key, data=value)
            n = g.create_group("neuron")
            for key, value in {"iDecay": 1024, "vDecay": 256, "vThMant": 30, "wgtExp": 0,
                               "type": b"CUBA"}.items():
                n.create_dataset(key, data=value)
        f.create_group("simulation").create_dataset("tSample", data=8)
    return path


def test_step_time_equals_the_formula_written_out(tmp_path: Path) -> None:
    net = read_network(_dense_file(tmp_path / "dense.net"))
    profile = load_profile("loihi1")
    tc = EventCosts(source="test", neuron_ns=5.0, synaptic_op_ns=3.0,
                         barrier_ns={1: 100.0, 8: 900.0}, cores_per_tile=4,
                         barrier_interpolation="linear", neuron_active_extra_ns=2.0,
                         spike_out_ns=7.0, message_out_ns=11.0, message_in_ns=13.0)
    profile = replace(profile, timing={"test": tc}, default_timing="test")
    rng = np.random.default_rng(0)
    inputs = (rng.random((5, 6, 8)) < 0.5).astype(np.int64)
    result = emulate(net, inputs, deployment_draws(net, 5, seed=0))
    fit = check_fit(net, profile)
    assert [ly.cores for ly in fit.layers] == [1, 1]
    report = step_times(net, inputs, result, fit, profile, dynamic_joules=1e-6)
    w0, w1 = (ly.weight != 0 for ly in net.layers)
    r0, r1 = (r.astype(int) for r in result.rasters)
    steps, events = [], np.zeros(6)  # neurons, active, spikes, msgs out, msgs in, synops
    for s in range(5):
        for t in range(8):
            act0 = result.active_steps[0][s] / (4 * 8)
            act1 = result.active_steps[1][s] / (3 * 8)
            x = inputs[s, :, t]
            reach0 = w0.any(axis=0).astype(int)  # inputs with a synapse into layer 0's core
            reach1 = w1.any(axis=0).astype(int)
            msgs_in0 = int((x * reach0).sum())
            syn0 = int((w0 * x).sum())
            msgs_out0 = int((r0[s, :, t] * reach1).sum())
            layer0 = max(4 * 5.0 + 4 * act0 * 2.0 + r0[s, :, t].sum() * 7.0 + msgs_out0 * 11.0,
                         msgs_in0 * 13.0 + syn0 * 3.0)
            msgs_in1 = int((r0[s, :, t] * reach1).sum())
            syn1 = int((w1 * r0[s, :, t]).sum())
            layer1 = max(3 * 5.0 + 3 * act1 * 2.0 + r1[s, :, t].sum() * 7.0,
                         msgs_in1 * 13.0 + syn1 * 3.0)
            steps.append(max(layer0, layer1) + 100.0)  # 2 cores: 1 tile
            events += [7, 4 * act0 + 3 * act1, r0[s, :, t].sum() + r1[s, :, t].sum(),
                       msgs_out0, msgs_in0 + msgs_in1, syn0 + syn1]
    assert r0.sum() > 0 and r1.sum() > 0
    assert report.time_per_step_s == pytest.approx(np.mean(steps) * 1e-9)
    assert report.slowest_step_s == pytest.approx(max(steps) * 1e-9)
    assert report.latency_s_per_sample == pytest.approx(9 * np.mean(steps) * 1e-9)
    assert report.throughput_samples_per_s == pytest.approx(1 / (8 * np.mean(steps) * 1e-9))
    static = profile.energy.static_power_w_per_chip * 8 * np.mean(steps) * 1e-9
    assert report.static_energy_joules_per_sample == pytest.approx(static)
    assert report.energy_delay_product_js == pytest.approx(
        (static + 1e-6) * report.latency_s_per_sample)

    priced = replace(tc, neuron_pj=1.0, neuron_active_extra_pj=2.0, spike_out_pj=3.0,
                     message_out_pj=4.0, message_in_pj=5.0, synaptic_op_pj=6.0)
    profile = replace(profile, timing={"priced": priced}, default_timing="priced")
    report = step_times(net, inputs, result, fit, profile, dynamic_joules=1e-6)
    expected = float(events @ np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])) / 5 * 1e-12
    assert report.dynamic_energy_joules_per_sample == pytest.approx(expected)
    assert "priced" in report.dynamic_energy_source


def test_barrier_tables_and_a_basis_a_profile_lacks() -> None:
    step = EventCosts(source="s", neuron_ns=1, synaptic_op_ns=1, cores_per_tile=4,
                           barrier_ns={1: 600.0, 2: 1000.0, 4: 1400.0, 29: 1800.0})
    assert [step.barrier(n) for n in (1, 3, 28, 29, 40)] == [600, 1000, 1400, 1800, 1800]
    linear = replace(step, barrier_ns={1: 113.0, 32: 465.0}, barrier_interpolation="linear")
    assert linear.barrier(32) == 465 and linear.barrier(16) == pytest.approx(113 + 15 * 352 / 31)
    with pytest.raises(ProfileError, match="has no timing basis 'x'"):
        load_profile("loihi2").timing_basis("x")
