"""Profile-grouped RandHet (``granularity = "profile"``): the form of RandHet that fits a Loihi
core's decay profiles. Binding, draws, training -> export -> deploy bit for bit, fit and the
host's register writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from randhet.decays import (
    deployment_draws,
    draw_network,
    network_bindings,
    profile_binding,
    profile_groups,
)
from randhet.deploy.fit import bound_block_sizes, check_fit
from randhet.deploy.pipeline import deploy
from randhet.export import export_run
from randhet.hardware import load_profile
from randhet.network import read_network
from randhet.spec import NeuronSpec
from randhet.train.trainer import train


def grouped(k: int, core: int, **kw: object) -> NeuronSpec:
    return NeuronSpec(granularity="profile", profiles=k, core_size=core, **kw)  # type: ignore[arg-type]


def test_binding_is_balanced_per_core_and_reproducible_from_the_seed() -> None:
    b = profile_binding(50, 16, 3, torch.Generator().manual_seed(4))
    assert b.shape == (50,) and int(b.min()) == 0 and int(b.max()) == 2
    for start in range(0, 50, 16):
        counts = torch.bincount(b[start:start + 16], minlength=3)
        core = min(16, 50 - start)
        assert int(counts.sum()) == core
        assert int(counts.max()) - int(counts[counts > 0].min()) <= 1
        assert int((counts > 0).sum()) == min(3, core)
    again = profile_binding(50, 16, 3, torch.Generator().manual_seed(4))
    other = profile_binding(50, 16, 3, torch.Generator().manual_seed(5))
    assert torch.equal(b, again) and not torch.equal(b, other)
    spec = grouped(3, 16)
    first = network_bindings(spec, [(50,), (4, 3, 3)], seed=7)
    assert all(torch.equal(x, y) for x, y in
               zip(first, network_bindings(spec, [(50,), (4, 3, 3)], seed=7), strict=True))
    with pytest.raises(ValueError, match="profiles >= 1"):
        NeuronSpec(granularity="profile", profiles=0, core_size=8)


@pytest.mark.parametrize("resample", ["forward", "step"])
def test_one_profile_is_one_draw_per_core(resample: str) -> None:
    spec = grouped(1, 8, resample=resample)
    shape = (20,)
    binding = network_bindings(spec, [shape], seed=0)
    draw = draw_network(spec, 3, [shape], seed=1, steps=4, bindings=binding)[0]
    for d in (draw.current, draw.voltage):
        cores = [d[:, 0:8], d[:, 8:16], d[:, 16:20]]
        for c in cores:  # every neuron of a core has its core's value, per sample (and step)
            assert torch.equal(c, c[:, :1].expand_as(c))
        assert not torch.equal(cores[0][:, 0], cores[1][:, 0])  # cores draw independently
        assert not torch.equal(d[0], d[1])  # and every sample afresh


@pytest.mark.parametrize("resample", ["forward", "step"])
def test_one_profile_per_neuron_repeats_the_per_neuron_draws_bit_for_bit(resample: str) -> None:
    shapes = [(4, 5, 5), (24,)]
    spec = grouped(32, 32, resample=resample)
    per_neuron = dataclasses.replace(spec, granularity="neuron")
    bindings = network_bindings(spec, shapes, seed=3)
    a = draw_network(spec, 5, shapes, seed=9, steps=3, bindings=bindings)
    b = draw_network(per_neuron, 5, shapes, seed=9, steps=3)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.current, y.current) and torch.equal(x.voltage, y.voltage)


def test_profiles_of_a_draw_are_shared_by_their_neurons() -> None:
    spec = grouped(4, 10)
    binding = network_bindings(spec, [(30,)], seed=2)[0]
    d = draw_network(spec, 6, [(30,)], seed=0, bindings=[binding])[0]
    groups = profile_groups(binding, 10, 4).numpy()
    for g in np.unique(groups):
        members = d.current[:, torch.as_tensor(groups == g)]
        assert torch.equal(members, members[:, :1].expand_as(members))
    # 3 cores x 4 profiles: 12 distinct (du, dv) pairs in a sample
    pairs = {(float(c), float(v)) for c, v in zip(d.current[0], d.voltage[0], strict=True)}
    assert len(pairs) == 12


def test_block_sizes_never_straddle_two_binding_cores() -> None:
    assert bound_block_sizes(100, 12) == [1, 2, 3, 4, 6, 12]
    assert bound_block_sizes(10, 12) == [1, 2, 3, 4, 6, 10]


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory: pytest.TempPathFactory, make_tiny_config) -> Path:
    """A conv + dense network, K = 3 profiles per core of 8 neurons, trained one epoch."""
    out = tmp_path_factory.mktemp("grouped")
    cfg = make_tiny_config('model.layers=["conv:4:s2", "dense:40"]', "train.epochs=1",
                           "encoding.timesteps=6", 'neuron.granularity="profile"',
                           "neuron.profiles=3", "neuron.core_size=8")
    train(cfg, out, progress=False)
    export_run(out)
    return out


def test_grouped_network_trains_exports_and_deploys_bit_exactly(grouped_run: Path) -> None:
    net = read_network(grouped_run / "network.net")
    assert net.spec.neuron.profiles == 3 and net.spec.neuron.core_size == 8
    from randhet.runs import open_run

    model = open_run(grouped_run).model()
    for block, layer in zip(model.blocks, net.layers, strict=True):
        assert np.array_equal(block.neuron.profile_binding.numpy(), layer.profile_binding)
    report = deploy(grouped_run / "network.net", samples=8, seed=2, progress=False).to_dict()
    assert report["bit_exact_fraction"] == 1.0
    assert report["emulator_bit_exact_fraction"] == 1.0
    assert sum(layer["spikes_per_sample"] for layer in report["layers"]) > 0


def test_grouped_network_fits_loihi1_where_its_per_neuron_twin_does_not(
    grouped_run: Path,
) -> None:
    net = read_network(grouped_run / "network.net")
    loihi1 = load_profile("loihi1")
    fit = check_fit(net, loihi1, deployment_draws(net, 4, seed=0))
    assert fit.fits
    # hand count: conv 4x4x4 = 64 neurons -> 8 cores of 8, 3 profiles each; dense 40 -> 5 cores
    # of 8, 3 each; dense 10 -> a core of 8 (3 profiles) and one of 2 (2 profiles);
    # every redraw writes decayU and decayV of every bound profile
    assert [ly.cores for ly in fit.layers] == [8, 5, 2]
    assert [ly.decay_profiles for ly in fit.layers] == [3, 3, 3]
    assert [ly.redraw_writes_per_sample for ly in fit.layers] == [2 * 3 * 8, 2 * 3 * 5,
                                                                  2 * (3 + 2)]
    assert fit.redraw()["register_writes_per_sample"] == 48 + 30 + 10
    neuron = dataclasses.replace(net.spec.neuron, granularity="neuron", profiles=0, core_size=0)
    twin = dataclasses.replace(
        net, spec=dataclasses.replace(net.spec, neuron=neuron),
        layers=tuple(dataclasses.replace(ly, profile_binding=None) for ly in net.layers))
    twin_fit = check_fit(twin, loihi1, deployment_draws(twin, 4, seed=0))
    assert not twin_fit.fits  # 40 neurons on one core draw 40 pairs, the core holds 31
    assert twin_fit.layers[1].decay_profiles == 40


def test_per_step_redraws_write_every_step(grouped_run: Path) -> None:
    net = read_network(grouped_run / "network.net")
    neuron = dataclasses.replace(net.spec.neuron, resample="step")
    stepped = dataclasses.replace(net, spec=dataclasses.replace(net.spec, neuron=neuron))
    fit = check_fit(stepped, load_profile("loihi1"))
    assert fit.redraw()["register_writes_per_sample"] == 6 * (48 + 30 + 10)
    fixed = dataclasses.replace(net.spec.neuron, resample="fixed")
    frozen = dataclasses.replace(net, spec=dataclasses.replace(net.spec, neuron=fixed))
    assert check_fit(frozen, load_profile("loihi1")).redraw()["register_writes_per_sample"] == 0


@pytest.mark.lava
@pytest.mark.parametrize("resample", ["forward", "step"])
def test_stock_lava_lif_groups_deploy_bit_exactly_with_host_written_decays(
    resample: str, tmp_path: Path, make_tiny_config,
) -> None:
    cfg = make_tiny_config("train.epochs=1", "encoding.timesteps=5",
                           'neuron.granularity="profile"', "neuron.profiles=2",
                           "neuron.core_size=16", f'neuron.resample="{resample}"')
    train(cfg, tmp_path, progress=False)
    export_run(tmp_path)
    report = deploy(tmp_path / "network.net", backend="lava-stock", samples=5, seed=3,
                    progress=False, profile="loihi1").to_dict()
    assert report["bit_exact_fraction"] == 1.0
    assert report["emulator_bit_exact_fraction"] == 1.0
    assert sum(layer["spikes_per_sample"] for layer in report["layers"]) > 0
    # hand count: dense 24 -> cores of 16 and 8 neurons, 2 profiles each; dense 10 -> one
    # core, 2 profiles: 6 stock LIF groups, du and dv each (per step: 5 steps)
    per_sample = 2 * 6 * (5 if resample == "step" else 1)
    assert report["host_writes_per_sample"]["decay_registers"] == per_sample
    assert report["resources"]["redraw"]["register_writes_per_sample"] == per_sample
    # u and v of 34 neurons; synapse buffers: 24 entries into layer 0 (one block per group from
    # the input), 4 blocks of 5 entries into each of dense 10's 2 groups
    assert report["host_writes_per_sample"]["state_resets"] == 2 * (24 + 10) + 24 + 4 * 10
    assert "stock Lava LIF cannot run loihi1's datapath" in report["chip"]["applied"]


def test_stock_backend_refuses_per_neuron_draws_in_one_line(tiny_run: Path) -> None:
    from randhet.errors import UserError

    with pytest.raises(UserError, match="granularity = 'profile'") as err:
        deploy(tiny_run / "network.net", backend="lava-stock", samples=2, progress=False)
    assert "\n" not in str(err.value)


def test_loihi2_backend_refuses_clearly_without_lava_loihi(grouped_run: Path) -> None:
    from randhet.deploy.loihi2_backend import lava_loihi_installed
    from randhet.errors import UserError

    if lava_loihi_installed():  # a machine with Intel's extension runs it instead
        pytest.skip("lava-loihi is installed here")
    with pytest.raises(UserError, match="needs Intel's lava-loihi extension"):
        deploy(grouped_run / "network.net", backend="loihi2", samples=2, progress=False)


def test_training_draws_one_pair_per_profile_and_the_mean_decays_learn(make_tiny_config) -> None:
    from randhet.config import network_spec
    from randhet.models.spiking import build_network

    cfg = make_tiny_config('neuron.granularity="profile"', "neuron.profiles=3",
                           "neuron.core_size=8", "neuron.learn_decay=true")
    model = build_network(network_spec(cfg, (1, 8, 8), 10), seed=5)
    model.train()
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    for block in model.blocks:
        neuron = block.neuron
        groups = profile_groups(neuron.profile_binding, 8, 3).numpy()
        for d in (neuron.last_draw.current, neuron.last_draw.voltage):
            flat = d.reshape(4, -1).numpy()
            for g in np.unique(groups):
                members = flat[:, groups == g]
                assert (members == members[:, :1]).all()
        assert neuron.mean_current_decay.grad is not None
        assert torch.isfinite(neuron.mean_current_decay.grad).all()
    assert any(float(b.neuron.mean_voltage_decay.grad.abs().sum()) > 0 for b in model.blocks)
