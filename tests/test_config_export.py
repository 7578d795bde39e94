"""Config resolution and the netx file: overrides, validation, round trip of the integers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from randhet.config import DEFAULTS, dump_toml, load_config, network_spec
from randhet.data import load_dataset
from randhet.data.datasets import stratified_split
from randhet.errors import ConfigError
from randhet.network import read_network
from randhet.runs import open_run
from randhet.spec import NetworkSpec


def test_defaults_file_and_overrides_compose(tmp_path: Path) -> None:
    f = tmp_path / "exp.toml"
    f.write_text('seed = 4\n[neuron]\nsigma = 0.5\n[encoding]\nkind = "rate"\n')
    layers = 'model.layers=["conv:4", "dense:12"]'
    cfg = load_config(f, ["neuron.sigma=0.25", layers, "encoding.kind=direct"])
    assert cfg["name"] == "exp" and cfg["seed"] == 4
    assert cfg["neuron"]["sigma"] == 0.25 and cfg["model"]["layers"] == ["conv:4", "dense:12"]
    assert cfg["encoding"]["kind"] == "direct"
    assert cfg["train"]["epochs"] == DEFAULTS["train"]["epochs"]
    assert tomllib.loads(dump_toml(cfg)) == cfg  # the saved resolved config reads back equal


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("neuron.threshold=1.3", "multiple of 1/64"),
        ("encoding.kind=spikes", "must be one of"),
        ("encoding.timesteps=64", "must be in"),
        ("data.dataset=imagenet", "must be one of"),
        ("model=3", "must be a table"),
        ("nokey", "expected section.key=value"),
    ],
)
def test_invalid_values_are_refused_with_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_digits_split_is_stratified_disjoint_and_seeded() -> None:
    a = load_dataset(DEFAULTS["data"])
    b = load_dataset(DEFAULTS["data"])
    assert np.array_equal(a.x_test, b.x_test)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1
    assert set(np.unique(a.y_test)) == set(range(10))
    tr, va, te = stratified_split(a.y_train.repeat(1), 0.2, 0.2, 0)  # indices, any labels
    assert len(set(tr) | set(va) | set(te)) == len(tr) + len(va) + len(te) == len(a.y_train)
    other = load_dataset({**DEFAULTS["data"], "split_seed": 1})
    assert not np.array_equal(a.x_test, other.x_test)


def test_spec_round_trips_through_json() -> None:
    spec = network_spec(load_config(None), (1, 8, 8), 10)
    assert NetworkSpec.from_json(spec.to_json()) == spec


def test_export_holds_the_trained_integers(tiny_run: Path) -> None:
    model = open_run(tiny_run).model()
    net = read_network(tiny_run / "network.net")
    assert net.spec == model.spec
    for block, layer in zip(model.blocks, net.layers, strict=True):
        assert np.array_equal(block.integer_weight().numpy(), layer.weight)
        assert layer.weight.min() >= -256 and layer.weight.max() <= 254
        assert np.all(layer.weight % 2 == 0)
        assert layer.current_decay == 1024 and layer.voltage_decay == 123
        assert layer.threshold_mant == 80
    assert net.data["dataset"] == "digits"


def test_stock_netx_refuses_the_trained_direct_file(tiny_run: Path) -> None:
    """The default encoding (direct) shifts the first synapse's sum: stock netx must stop
    (tests/test_netx_stock.py: rate and event files run there with randhet's answer)."""
    from lava.lib.dl import netx

    with pytest.raises(ValueError, match="randhet network file: its first synapse shifts"):
        netx.hdf5.Network(net_config=str(tiny_run / "network.net"))


def test_a_truncated_layer_is_reported(tiny_run: Path, tmp_path: Path) -> None:
    from randhet.errors import NetworkFileError

    f = tmp_path / "cut.net"
    f.write_bytes((tiny_run / "network.net").read_bytes())
    with h5py.File(f, "a") as h:
        del h["layer/2/weight"]  # spec layer 1 (file layer 0: the stock-netx refusal)
    with pytest.raises(NetworkFileError, match="layer 1 is malformed"):
        read_network(f)


def test_checkpoint_loads_with_weights_only(tiny_run: Path) -> None:
    state = torch.load(tiny_run / "network.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_export_with_randomness_off_writes_the_same_weights_at_sigma_zero(
        tiny_run: Path, tmp_path: Path, capsys) -> None:
    """RandHet-trained weights deployed deterministically: sigma 0, the mean decays for every
    sample, the same integers as the randomized file; --format nir refuses the flag."""
    from randhet.cli import main
    from randhet.decays import deployment_draws
    from randhet.deploy.emulator import emulate
    from randhet.models.exported import model_from_export

    out = tmp_path / "deterministic.net"
    assert main(["export", str(tiny_run), "--randomness-off", "--out", str(out)]) == 0
    assert "randomness off" in capsys.readouterr().out
    net, randomized = read_network(out), read_network(tiny_run / "network.net")
    assert randomized.spec.neuron.sigma == 1.0 and net.spec.neuron.sigma == 0.0
    for a, b in zip(net.layers, randomized.layers, strict=True):
        assert np.array_equal(a.weight, b.weight)
        assert (a.current_decay, a.voltage_decay) == (b.current_decay, b.voltage_decay)
    draws = [deployment_draws(net, 6, seed) for seed in (0, 1)]
    for d0, d1, layer in zip(*draws, net.layers, strict=True):
        assert torch.all(d0.current == layer.current_decay)
        assert torch.equal(d0.voltage, d1.voltage)
    encoder = model_from_export(net).encoder
    x = encoder.to_integer(encoder(torch.as_tensor(load_dataset(net.data).x_test[:6]))).numpy()
    rasters = [emulate(net, x, d).rasters for d in draws]
    assert rasters[0][0].any() and rasters[0][-1].any()
    assert all(np.array_equal(a, b) for a, b in zip(*rasters, strict=True))
    redrawn = [emulate(randomized, x, deployment_draws(randomized, 6, seed)).rasters[0]
               for seed in (0, 1)]
    assert not np.array_equal(*redrawn)  # the randomized file's spikes depend on the draw
    assert main(["export", str(tiny_run), "--format", "nir", "--randomness-off"]) == 2
