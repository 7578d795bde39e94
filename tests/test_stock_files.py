"""Stock lava-dl netx files (no randhet metadata): read, emulated bit for bit against lava-dl's
own netx network on Lava, profiled and deployed from the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from randhet.cli import main
from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.workload import stock_workload
from randhet.deployed import ExportedLayer
from randhet.errors import NetworkFileError
from randhet.layer_tokens import layer_names
from randhet.network import read_network
from randhet.spec import ConvSpec, DenseSpec, FlattenSpec, InputSpec

PILOTNET = Path(__file__).resolve().parents[2] / "shared/data/lava-dl-pilotnet-lif/network.net"


def _neuron(g: h5py.Group, du: int = 4096, dv: int = 1024, vth: int = 25,
            kind: bytes = b"LOIHI") -> None:
    n = g.create_group("neuron")
    for key, value in {"iDecay": du, "vDecay": dv, "vThMant": vth, "wgtExp": 0,
                       "refDelay": 1, "tauRho": 0.5, "scaleRho": 1.0, "theta": 1600}.items():
        n.create_dataset(key, data=value)
    n.create_dataset("type", data=kind)


def _data(g: h5py.Group, **items: object) -> None:
    for key, value in items.items():
        g.create_dataset(key, data=value)


def write_stock(path: Path, seed: int = 0, neuron_type: bytes = b"LOIHI") -> Path:
    """A small file in lava-dl PilotNet's layout: a bias-driven input layer (2, 7, 9), a conv
    with stride (2, 1), padding (1, 0) and per-channel biases, flatten, a dense layer with
    biases and a dense output, different decays and thresholds per layer, T = 12."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        g = layers.create_group("0")
        _data(g, type=[b"input"], shape=[2, 7, 9], weight=40.0, bias=36.0)
        _neuron(g, kind=neuron_type)
        g = layers.create_group("1")
        _data(g, type=[b"conv"], shape=[4, 4, 7], inChannels=2, outChannels=4, groups=1,
              weight=rng.integers(-20, 21, (4, 2, 3, 3)).astype(np.float32),
              bias=rng.integers(-10, 30, 4).astype(np.float32), kernelSize=[3, 3],
              stride=[2, 1], padding=[1, 0], dilation=[1, 1])
        _neuron(g, dv=512, vth=40)
        _data(layers.create_group("2"), type=[b"flatten"], shape=[1, 1, 112])
        g = layers.create_group("3")
        _data(g, type=[b"dense"], shape=[6, 1, 1], inFeatures=112, outFeatures=6,
              weight=rng.integers(-30, 31, (6, 112)).astype(np.float32),
              bias=rng.integers(-5, 20, 6).astype(np.float32))
        _neuron(g, du=3000, dv=800, vth=30)
        g = layers.create_group("4")
        _data(g, type=[b"dense"], shape=[3, 1, 1], inFeatures=6, outFeatures=3,
              weight=rng.integers(-60, 61, (3, 6)).astype(np.float32))
        _neuron(g, vth=20)
        _data(f.create_group("simulation"), Ts=1, tSample=12)
    return path


def write_pooled(path: Path, pool_as_conv: bool) -> Path:
    """A bias-driven input layer (2, 8, 8), a 2x2 sum pool of weight 12 (slayer's ``Pool``
    block as it writes it, or the same pool as a depthwise ``conv``, which netx builds), a 3x3
    depthwise conv with its own weights per channel, flatten and a dense output, T = 10."""
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        g = layers.create_group("0")
        _data(g, type=[b"input"], shape=[2, 8, 8], weight=40.0, bias=30.0)
        _neuron(g)
        g = layers.create_group("1")
        if pool_as_conv:
            _data(g, type=[b"conv"], shape=[2, 4, 4], inChannels=2, outChannels=2, groups=2,
                  weight=np.full((2, 1, 2, 2), 12.0, dtype=np.float32), kernelSize=[2, 2],
                  stride=[2, 2], padding=[0, 0], dilation=[1, 1])
        else:
            _data(g, type=[b"pool"], shape=[2, 4, 4], kernelSize=[2, 2], stride=[2, 2],
                  padding=[0, 0], dilation=[1, 1],
                  weight=np.full((1, 1, 2, 2), 12.0, dtype=np.float32))
        _neuron(g, dv=600, vth=20)
        g = layers.create_group("2")
        _data(g, type=[b"conv"], shape=[2, 4, 4], inChannels=2, outChannels=2, groups=2,
              weight=rng.integers(-10, 31, (2, 1, 3, 3)).astype(np.float32),
              kernelSize=[3, 3], stride=[1, 1], padding=[1, 1], dilation=[1, 1])
        _neuron(g, vth=30)
        _data(layers.create_group("3"), type=[b"flatten"], shape=[1, 1, 32])
        g = layers.create_group("4")
        _data(g, type=[b"dense"], shape=[3, 1, 1], inFeatures=32, outFeatures=3,
              weight=rng.integers(-20, 41, (3, 32)).astype(np.float32))
        _neuron(g, vth=20)
        _data(f.create_group("simulation"), Ts=1, tSample=10)
    return path


def test_a_stock_file_reads_as_lava_dl_builds_it(tmp_path: Path) -> None:
    net = read_network(write_stock(tmp_path / "stock.net"))
    assert net.stock and net.has_input_layer and net.data == {}
    kinds = [type(ly) for ly in net.spec.layers]
    assert kinds == [InputSpec, ConvSpec, FlattenSpec, DenseSpec, DenseSpec]
    conv = net.spec.layers[1]
    assert conv.strides == (2, 1) and conv.paddings == (1, 0) and conv.out_shape == (4, 4, 7)
    assert net.spec.encoding.timesteps == 12 and net.spec.neuron.sigma == 0
    assert net.layers[1].bias.shape == (4, 4, 7)  # per channel, broadcast
    assert (net.layers[1].bias == net.layers[1].bias[:, :1, :1]).all()
    assert [ly.current_decay for ly in net.layers] == [4096, 4096, 3000, 4096]
    assert [ly.threshold_mant for ly in net.layers] == [25, 40, 30, 20]


def test_the_emulator_equals_lava_dls_netx_network_on_every_layer(tmp_path: Path) -> None:
    from randhet.deploy.lava_netx import run_netx_lava

    net = read_network(write_stock(tmp_path / "stock.net"))
    work = stock_workload(net, None, samples=3, seed=5)
    ours = emulate(net, work.inputs, deployment_draws(net, 3, seed=0)).rasters
    theirs = run_netx_lava(net, work.inputs).rasters
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape, k
        assert np.array_equal(a, b), f"layer {k}"
    assert all(r.sum() > 0 for r in ours)  # every layer spikes: the check is not vacuous
    # the biases matter: without them the conv layer spikes differently
    stripped = replace(net.layers[1], bias=None)
    other = replace(net, layers=(net.layers[0], stripped, *net.layers[2:]))
    assert not np.array_equal(emulate(other, work.inputs,
                                      deployment_draws(net, 3, seed=0)).rasters[1], ours[1])


def test_pool_and_depthwise_layers_run_as_netx_runs_their_conv_form(tmp_path: Path,
                                                                      capsys) -> None:
    """netx builds no ``pool`` layer, so the emulator's reading of one is checked against Lava
    running the same pool written as a depthwise conv; the depthwise conv runs on both."""
    from randhet.deploy.lava_netx import run_netx_lava

    pooled = read_network(write_pooled(tmp_path / "pool.net", pool_as_conv=False))
    twin = read_network(write_pooled(tmp_path / "conv.net", pool_as_conv=True))
    pool, depthwise = pooled.spec.layers[1], pooled.spec.layers[2]
    assert pool.pool and pool.groups == 2 and pool.out_shape == (2, 4, 4)
    assert depthwise.pool and depthwise.groups == 2 and depthwise.out_shape == (2, 4, 4)
    assert np.array_equal(pooled.layers[1].weight, twin.layers[1].weight)
    work = stock_workload(pooled, None, samples=3, seed=2)
    ours = emulate(pooled, work.inputs, deployment_draws(pooled, 3, seed=0)).rasters
    theirs = run_netx_lava(twin, work.inputs).rasters
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert np.array_equal(a, b), f"layer {k}"
    assert all(r.sum() > 0 for r in ours)
    assert layer_names(pooled.spec)[1:3] == ["1:pool:2", "2:depthwise:k3"]
    capsys.readouterr()
    assert main(["deploy", str(pooled.path), "--backend", "lava", "--samples", "1",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "netx cannot build" in err and "--backend emulator" in err and "\n" not in err


def test_profile_and_deploy_of_a_stock_file_from_the_command_line(tmp_path: Path,
                                                                   capsys) -> None:
    path = str(write_stock(tmp_path / "stock.net"))
    out = tmp_path / "out"
    assert main(["profile", path, "--samples", "4", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "profile.json").read_text())
    assert report["accuracy"] is None and report["workload"].startswith("synthetic")
    assert [ly["name"] for ly in report["layers"]] == ["0:input", "1:conv:4:s2x1",
                                                       "2:dense:6", "3:dense:3"]
    assert report["layers"][0]["synops_effective"] == 0  # the input layer has no synapses
    assert report["layers"][1]["synops_effective"] > 0
    x = np.random.default_rng(0).uniform(-1, 1, (3, 2, 7, 9))
    np.save(tmp_path / "x.npy", x)
    assert main(["deploy", path, "--backend", "lava", "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(out), "--quiet"]) == 0
    deployed = json.loads((out / "deploy.json").read_text())
    assert deployed["samples"] == 3 and deployed["emulator_bit_exact_fraction"] == 1.0
    assert deployed["bit_exact_fraction"] is None  # no torch model for a stock file
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", np.zeros((2, 5)))
    assert main(["profile", path, "--inputs", str(tmp_path / "bad.npy"), "--out",
                 str(out)]) == 2
    assert "expected [N, 2, 7, 9]" in capsys.readouterr().err
    assert main(["deploy", path, "--backend", "lava-stock", "--out", str(out)]) == 2
    assert "stock netx file deploys on the emulator or on lava" in capsys.readouterr().err


def test_a_layer_or_neuron_randhet_cannot_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(NetworkFileError, match="layer 0 has 'SDNN' neurons"):
        read_network(write_stock(tmp_path / "sdnn.net", neuron_type=b"SDNN"))
    path = write_stock(tmp_path / "unpool.net")
    with h5py.File(path, "r+") as f:
        del f["layer/2/type"]
        f["layer/2"].create_dataset("type", data=[b"unpool"])
    with pytest.raises(NetworkFileError, match="layer 2 is a 'unpool' layer"):
        read_network(path)
    path = write_pooled(tmp_path / "odd.net", pool_as_conv=False)
    with h5py.File(path, "r+") as f:
        f["layer/1/weight"][0, 0, 0, 0] = 11.0
    with pytest.raises(NetworkFileError, match="layer 1 is a pool with unequal weights"):
        read_network(path)


@pytest.mark.skipif(not PILOTNET.is_file(), reason="../shared/data (lava-dl's PilotNet LIF "
                    "file) is absent")
@pytest.mark.parametrize("chip", ["loihi2", "loihi1"])
def test_lava_dls_pilotnet_profiles_with_time_and_energy(chip: str, tmp_path: Path,
                                                         capsys) -> None:
    out = tmp_path / "pilotnet"
    assert main(["profile", str(PILOTNET), "--profile", chip, "--samples", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "profile.json").read_text())
    names = [ly["name"] for ly in report["layers"]]
    assert names[0] == "0:input" and names[4] == "4:conv:64:s2x1" and names[-1] == "9:dense:1"
    assert report["layers"][0]["neurons"] == 3 * 66 * 200
    assert report["resources"]["fits"]
    timing = report["timing"]
    assert timing["basis"] == {"loihi2": "proxy", "loihi1": "sanafe"}[chip]
    assert 1e-6 < timing["time_per_step_s"] < 1e-3
    assert timing["latency_s_per_sample"] == pytest.approx(25 * timing["time_per_step_s"])
    assert timing["static_energy_joules_per_sample"] > 0
    assert timing["dynamic_energy_joules_per_sample"] > 0
    assert timing["source"] and all(ly["busiest_core_s"] > 0 for ly in timing["layers"])
    for what in ("time per step", "latency", "static", "dynamic", "busiest core"):
        assert what in printed


# the Loihi 2 compiler's cores per layer for lava-dl's PilotNet LIF network (lava-dl's
# pilotnet_snn/benchmark.ipynb, summarised in ../shared/data/lava-dl-pilotnet-lif/README.md)
COMPILER_CORES = {"0:input": 13, "1:conv:24:s2": 25, "2:conv:36:s2": 13, "3:conv:48:s2": 3,
                  "4:conv:64:s2x1": 3, "5:conv:64": 2, "6:dense:100": 12, "7:dense:50": 1,
                  "8:dense:10": 1, "9:dense:1": 1}


def test_the_compilers_tiling_rules_in_closed_form() -> None:
    from randhet.deploy.placement import dense_block, spatial_columns

    assert spatial_columns((3, 66, 200), 4096) == 16  # 16 x 66 x 3 = 3168; 32 columns: 6336
    assert spatial_columns((64, 4, 22), 4096) == 8  # 16 columns would be 4096, not fewer
    assert spatial_columns((64, 64, 5), 4096) is None  # one column has 4096 neurons
    assert dense_block(2560, 100, 12000, 4) == 16  # 4 words per row: 10240 <= 12000 words
    assert dense_block(100, 50, 12000, 4) == 50  # the whole layer fits one core
    assert dense_block(20000, 10, 12000, 4) is None  # one neuron's rows do not fit


def test_a_fan_in_beyond_what_the_compiler_placed_is_reported_unknown() -> None:
    from randhet.deploy.placement import compiler_cut
    from randhet.hardware import load_profile

    rules = load_profile("loihi2").placement
    assert rules is not None and rules.fan_in_axons_seen == 2560

    def cut(n: int) -> str:
        layer = ExportedLayer(spec=DenseSpec(n, 4), weight=np.zeros((4, n), dtype=np.int64),
                              current_decay=0, voltage_decay=0, threshold_mant=1)
        found = compiler_cut(layer, rules, 8192)
        assert found is not None and found.neurons_per_core == 4
        return found.bound_by

    assert "unknown" not in cut(2560)
    assert "beyond the 2560 the compiler was seen to place" in cut(2561)


@pytest.mark.skipif(not PILOTNET.is_file(), reason="../shared/data (lava-dl's PilotNet LIF "
                    "file) is absent")
def test_pilotnet_placement_against_the_loihi2_compiler() -> None:
    from randhet.deploy.fit import check_fit
    from randhet.hardware import load_profile

    fit = check_fit(read_network(PILOTNET), load_profile("loihi2"))
    cores = {ly.name: ly.cores for ly in fit.layers}
    assert cores.keys() == COMPILER_CORES.keys()
    spatial = [name for name in cores if "dense" not in name]
    assert all(cores[k] == COMPILER_CORES[k] for k in spatial)  # the rules were fitted on them
    total = sum(COMPILER_CORES.values())
    assert abs(fit.total_cores - total) <= 0.2 * total  # the goal: within 20 % of 74
