"""Profiling: activity, SynOps and energy checked by hand on a 3-neuron network, the resource
fit (cores, chips, layers that cannot fit), and `randhet profile` end to end."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from randhet.cli import main
from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.fit import _conv_core_fan_in, check_fit
from randhet.deploy.pipeline import deploy
from randhet.deploy.profiling import measure
from randhet.deploy.synapses import synapse_counts
from randhet.hardware import load_profile
from randhet.network import ExportedLayer, ExportedNetwork, read_network
from randhet.spec import ConvSpec, DenseSpec, EncodingSpec, FlattenSpec, NetworkSpec, NeuronSpec

SHIPPED = Path(__file__).resolve().parents[1] / "hardware_profiles"

# 3 neurons, 2 inputs; weight column 0 has 3 nonzero weights, column 1 has 2.
WEIGHT = np.array([[100, 0], [-50, 60], [20, 20]], dtype=np.int64)
# [S=2, inputs=2, T=4] input spikes
INPUTS = np.array([
    [[1, 1, 1, 1], [0, 1, 0, 1]],
    [[0, 0, 0, 0], [1, 1, 1, 0]],
], dtype=np.int64)
# Current decay 4096 (u = a << 6 each step), voltage decay 2048 (v keeps half), threshold
# vThMant 80. In units of 64: u[t] = a[t]; v[t] = v[t-1] / 2 + u[t]; spike where v > 80, then
# v = 0. a = WEIGHT @ x[t]:
#   sample 0: n0 a = 100,100,100,100 -> v 100 s, 100 s, 100 s, 100 s     (4 spikes)
#             n1 a = -50,10,-50,10   -> v -50, -15, -57.5, -18.75         (0)
#             n2 a = 20,40,20,40     -> v 20, 50, 45, 62.5                 (0)
#   sample 1: n0 a = 0,0,0,0         -> u = v = 0 (inactive every step)    (0)
#             n1 a = 60,60,60,0      -> v 60, 90 s, 60, 30                 (1)
#             n2 a = 20,20,20,0      -> v 20, 30, 35, 17.5                 (0)
EXPECTED_RASTER = np.array([
    [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
    [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
], dtype=bool)


def _hand_network() -> ExportedNetwork:
    spec = NetworkSpec((2,), (DenseSpec(2, 3),), NeuronSpec(sigma=0.0),
                       EncodingSpec(kind="rate", timesteps=4), num_classes=3)
    layer = ExportedLayer(spec.layers[0], WEIGHT, current_decay=4096, voltage_decay=2048,
                          threshold_mant=80)
    return ExportedNetwork(spec, (layer,), {}, Path("hand.net"))


def _conv_network() -> ExportedNetwork:
    """conv 1x4x4 -> 2x4x4 (3x3, padding 1), flatten, dense 32 -> 3."""
    conv = ConvSpec((1, 4, 4), 2, kernel=3, stride=1, padding=1)
    spec = NetworkSpec((1, 4, 4), (conv, FlattenSpec((2, 4, 4)), DenseSpec(32, 3)),
                       NeuronSpec(sigma=0.0), EncodingSpec(kind="rate", timesteps=2),
                       num_classes=3)
    kernel = np.full((2, 1, 3, 3), 2, dtype=np.int64)
    kernel[:, 0, 0, 0] = 0  # one zero tap per channel
    layers = (ExportedLayer(conv, kernel, 1024, 1024, 80),
              ExportedLayer(spec.layers[2], np.full((3, 32), 2, dtype=np.int64), 1024, 1024, 80))
    return ExportedNetwork(spec, layers, {}, Path("conv.net"))


def _profile_file(tmp_path: Path, **core: int) -> Path:
    """loihi1.toml with some [core] integers replaced."""
    text = (SHIPPED / "loihi1.toml").read_text()
    for key, value in core.items():
        text, n = re.subn(rf"^{key} = \d+", f"{key} = {value}", text, flags=re.M)
        assert n == 1, key
    path = tmp_path / f"small_{'_'.join(f'{k}{v}' for k, v in core.items())}.toml"
    path.write_text(text)
    return path


def test_profile_numbers_match_a_hand_computation() -> None:
    net = _hand_network()
    result = emulate(net, INPUTS, deployment_draws(net, 2, seed=0))
    assert np.array_equal(result.rasters[0], EXPECTED_RASTER)
    # active neuron-steps: sample 0 every neuron every step (12); sample 1 n0 never, n1 and n2
    # every step (u or v nonzero; at t = 3 u = 0 but v = 30 and 17.5) -> 8
    assert result.active_steps[0].tolist() == [12, 8]
    profile = load_profile("loihi2")
    report = measure(net, INPUTS, result, profile).to_dict()
    layer = report["layers"][0]
    assert layer["name"] == "0:dense:3" and layer["neurons"] == 3
    assert layer["spikes_per_sample"] == (4 + 1) / 2
    # sparsity: mean over samples of 1 - spikes / (3 neurons * 4 steps)
    assert report["activation_sparsity"] == pytest.approx(((1 - 4 / 12) + (1 - 1 / 12)) / 2)
    assert layer["activation_sparsity"] == report["activation_sparsity"]
    # effective: steps each input is nonzero x its nonzero fan-out (input 0: 3, input 1: 2)
    # sample 0: 4*3 + 2*2 = 16; sample 1: 0*3 + 3*2 = 6; mean 11
    assert report["synops"]["effective"] == 11 == layer["synops_effective"]
    # dense: 6 synapses (the zero weight included) x 4 steps
    assert report["synops"]["dense"] == 24 == layer["synops_dense"]
    assert report["neuron_updates"] == {"total": 12, "active": 10.0}  # (12 + 8) / 2 active
    assert layer["neuron_updates"] == {"total": 12, "active": 10.0}
    # E = 11 synops*23.6 + 10 active*81 + (12-10) inactive*52 + 2.5 spikes*1.7 pJ
    #   = 259.6 + 810 + 104 + 4.25 = 1177.85 pJ
    e = profile.energy
    by_formula = (11 * e.synaptic_op_pj + 10 * e.neuron_update_active_pj
                  + 2 * e.neuron_update_inactive_pj + 2.5 * e.spike_in_tile_pj) * 1e-12
    energy = report["energy"]
    assert energy["joules_per_sample"] == pytest.approx(by_formula, rel=1e-12)
    assert energy["joules_per_sample"] == pytest.approx(1177.85e-12, rel=1e-12)
    assert layer["energy_joules"] == pytest.approx(energy["joules_per_sample"], rel=1e-12)
    assert "23.6 pJ" in energy["formula"] and "PROXY" in energy["basis"]
    assert energy["sources"] == profile.sources
    # ANN: one float MAC per synapse, once: 6 * 4.6 pJ
    assert report["ann_reference"]["macs"] == 6
    assert report["ann_reference"]["joules_per_sample"] == pytest.approx(27.6e-12, rel=1e-12)
    assert "not neuromorphic hardware" in report["ann_reference"]["label"]


def test_layer_energies_add_up_on_a_conv_network() -> None:
    net = _conv_network()
    rng = np.random.default_rng(0)
    inputs = (rng.random((3, 1, 4, 4, 2)) < 0.5).astype(np.int64)
    result = emulate(net, inputs, deployment_draws(net, 3, seed=0))
    report = measure(net, inputs, result, load_profile("loihi1")).to_dict()
    total = sum(ly["energy_joules"] for ly in report["layers"])
    assert total == pytest.approx(report["energy"]["joules_per_sample"], rel=1e-12)
    # conv dense SynOps: in-image kernel taps of 2x4x4 outputs (4 corners 4, 8 edges 6,
    # 4 inside 9 -> 100 per channel) x 2 channels x 2 steps; dense layer 32*3 x 2 steps
    assert [ly["synops_dense"] for ly in report["layers"]] == [100 * 2 * 2, 96 * 2]
    assert report["ann_reference"]["macs"] == 100 * 2 + 96
    # effective conv SynOps against the unrolled [32 outputs, 16 inputs] weight matrix
    unit = torch.eye(16, dtype=torch.float64).reshape(16, 1, 4, 4)
    kernel = torch.as_tensor(net.layers[0].weight, dtype=torch.float64)
    unrolled = torch.nn.functional.conv2d(unit, kernel, padding=1).reshape(16, 32).T.numpy()
    steps_nonzero = np.count_nonzero(inputs, axis=-1).reshape(len(inputs), -1)  # [S, 16]
    brute = steps_nonzero @ np.count_nonzero(unrolled, axis=0)  # nonzero input x nonzero weight
    assert report["layers"][0]["synops_effective"] == brute.mean()


def test_fit_counts_cores_and_names_a_layer_that_cannot_fit(tmp_path: Path) -> None:
    net = _hand_network()
    for name in ("loihi1", "loihi2"):
        fit = check_fit(net, load_profile(name))
        assert fit.fits and fit.total_cores == 1 and fit.chips == 1
        assert fit.layers[0].synapses == 5 and fit.layers[0].synaptic_memory_bytes == 5
    loihi2 = check_fit(net, load_profile("loihi2")).to_dict()
    assert loihi2["limits"]["max_fan_in_axons_per_core"] == "unknown"
    assert loihi2["layers"][0]["cores_by"]["synaptic_memory"] == "unknown"
    assert "not checked" in loihi2["summary"]
    # per-neuron weight bytes 1, 2, 2: 3 bytes per core -> blocks of 2 neurons -> 2 cores
    fit = check_fit(net, load_profile(str(_profile_file(tmp_path,
                                                         synaptic_memory_bytes_per_core=3))))
    assert fit.fits and fit.total_cores == 2 and fit.layers[0].core_memory_bytes == 3
    fit = check_fit(net, load_profile(str(_profile_file(tmp_path,
                                                         synaptic_memory_bytes_per_core=1))))
    assert not fit.fits and fit.total_cores is None and "synaptic_memory" in fit.failing[0].reason

    # conv: 16 neurons per core, 12 axons per core. Channel-major (CHW) blocks: a whole 4x4
    # channel reads all 16 input pixels; two output rows read three input rows (12 axons), so
    # blocks of 8, 4 cores. Channel-minor (HWC) blocks of 16 = two output rows x both channels
    # also read 12: 2 cores, the better cut. The dense layer reads 32 inputs on any core: it
    # cannot fit.
    small = load_profile(str(_profile_file(tmp_path, neurons_per_core=16,
                                           max_fan_in_axons_per_core=12)))
    conv_spec = _conv_network().layers[0].spec
    assert [_conv_core_fan_in(conv_spec, p, "CHW") for p in (16, 8)] == [16, 12]
    assert [_conv_core_fan_in(conv_spec, p, "HWC") for p in (32, 16)] == [16, 12]
    report = check_fit(_conv_network(), small)
    conv, dense = report.layers
    assert (conv.cores, conv.order, conv.neurons_per_core, conv.core_fan_in) == (2, "HWC", 16, 12)
    assert conv.cores_by == {"neurons": 2, "synaptic_memory": 2, "fan_in": 2}
    # nonzero synapses: 100 in-image taps per channel less the zero top-left tap, which is in
    # the image for the 3x3 outputs with row, col >= 1
    assert conv.neuron_fan_in == 9 and conv.synapses == 2 * (100 - 9)
    assert conv.synapses == synapse_counts(_conv_network().layers[0], "pre")[0].sum()
    assert not report.fits and [ly.name for ly in report.failing] == ["1:dense:3"]
    assert "32 input axons" in dense.reason and "max_fan_in_axons_per_core = 12" in dense.reason
    d = report.to_dict()
    assert d["fits"] is False and d["failing_layers"][0]["name"] == "1:dense:3"
    assert d["chips"] is None and d["layers"][0]["fits"] is True


def test_the_trained_tiny_network_fits_both_chips(tiny_run: Path, tmp_path: Path) -> None:
    net = read_network(tiny_run / "network.net")  # dense 64 -> 24 -> 10
    for name in ("loihi1", "loihi2"):
        fit = check_fit(net, load_profile(name))
        assert fit.fits and [ly.cores for ly in fit.layers] == [1, 1] and fit.chips == 1
    fit = check_fit(net, load_profile(str(_profile_file(tmp_path, neurons_per_core=8))))
    assert [ly.cores for ly in fit.layers] == [3, 2] and fit.total_cores == 5
    assert fit.chips_by["cores"] == math.ceil(5 / 128)


def test_profile_command_writes_every_section(tiny_run: Path, tmp_path: Path, capsys) -> None:
    net = str(tiny_run / "network.net")
    assert main(["profile", net, "--samples", "20", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr()
    assert "energy:" in printed.out and "source davies2018" in printed.out
    assert "ANN reference" in printed.out and printed.err == ""
    report = json.loads((tmp_path / "profile.json").read_text())
    assert (tmp_path / "profile.png").stat().st_size > 0
    assert report["samples"] == 20 and report["profile"] == "loihi2"
    for key in ("activation_sparsity", "synops", "neuron_updates", "energy", "ann_reference",
                "resources", "layers"):
        assert key in report, key
    assert {"effective", "dense", "unit"} <= set(report["synops"])
    assert {"formula", "basis", "sources", "joules_per_sample"} <= set(report["energy"])
    assert report["resources"]["fits"] is True and report["resources"]["total_cores"] == 2
    for layer in report["layers"]:
        assert {"name", "neurons", "spikes_per_sample", "activation_sparsity", "synops_effective",
                "synops_dense", "neuron_updates", "energy_joules"} <= set(layer)
    # deploy on the emulator with the same samples and seed reports the same numbers
    dep = deploy(net, backend="emulator", samples=20, out_dir=tmp_path / "dep",
                 progress=False).to_dict()
    for key in ("activation_sparsity", "synops", "neuron_updates", "energy", "ann_reference",
                "layers", "resources"):
        assert dep[key] == report[key], key


def test_profile_command_warns_when_the_network_does_not_fit(tiny_run: Path, tmp_path: Path,
                                                             capsys) -> None:
    net = str(tiny_run / "network.net")
    small = _profile_file(tmp_path, max_fan_in_axons_per_core=32)
    assert main(["profile", net, "--profile", str(small), "--samples", "5",
                 "--out", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("randhet: warning: the network does not fit")
    assert "0:dense:24" in err[0] and "64 input axons" in err[0] and "1:dense" not in err[0]
    resources = json.loads((tmp_path / "profile.json").read_text())["resources"]
    assert resources["fits"] is False
    assert [f["name"] for f in resources["failing_layers"]] == ["0:dense:24"]


def test_profile_command_rejects_a_bad_profile_or_network(tiny_run: Path, tmp_path: Path,
                                                          capsys) -> None:
    net = str(tiny_run / "network.net")
    assert main(["profile", net, "--profile", "loihi9", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown hardware profile 'loihi9'" in err[0]
    assert main(["profile", str(tmp_path / "none.net")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "network file not found" in err[0]
    assert not (tmp_path / "profile.json").exists()
