"""A netx file randhet writes gives randhet's answer in stock lava-dl netx, or stock netx
refuses it: rate and event files (binary input) run there spike for spike as randhet's
emulator runs them at sigma = 0; a direct-encoded file, whose first synapse shifts its sum
right (no netx field holds that), makes stock netx stop with a message that says why, and
randhet's own reader skips the layer that does it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from randhet.config import DEFAULTS
from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.export.netx import stock_netx_refusal, write_network
from randhet.layer_tokens import network_from_tokens
from randhet.network import ExportedLayer, ExportedNetwork, read_network
from randhet.spec import EncodingSpec, NeuronSpec

pytestmark = pytest.mark.lava

SAMPLES = 6
ENCODINGS = {  # (input shape, encoding)
    "direct": ((1, 4, 4), EncodingSpec("direct", 8, 4)),
    "rate": ((1, 4, 4), EncodingSpec("rate", 8)),
    "events": ((2, 3, 3, 8), EncodingSpec("events", 8)),
}


def _network(kind: str, tmp_path: Path) -> ExportedNetwork:
    """A random sigma = 0 network (flatten, dense 12, dense 10) written as a netx file."""
    shape, encoding = ENCODINGS[kind]
    neuron = NeuronSpec(threshold=1.25, current_decay=1024 / 4096, voltage_decay=123 / 4096,
                        sigma=0.0)
    spec = network_from_tokens(shape, ["dense:12"], 10, neuron, encoding)
    rng = np.random.default_rng(3)
    layers = tuple(
        ExportedLayer(ls, 2 * rng.integers(-10, 40, (ls.out_features, ls.in_features)), 1024,
                      123, 80)
        for ls in spec.spiking_layers)
    net = ExportedNetwork(spec, layers, dict(DEFAULTS["data"]), Path("random.net"))
    return read_network(write_network(net, tmp_path / f"{kind}.net"))


def _features(net: ExportedNetwork) -> tuple[int, ...]:
    """The input's shape without time (an event input's shape ends with its steps)."""
    shape = net.spec.input_shape
    return shape[:-1] if net.spec.encoding.kind == "events" else shape


def _inputs(net: ExportedNetwork) -> np.ndarray:
    """[S, N, T] integer inputs: graded values of input_bits (direct) or binary spikes."""
    enc = net.spec.encoding
    rng = np.random.default_rng(1)
    n = int(np.prod(_features(net)))
    if enc.kind == "direct":
        return rng.integers(0, 1 << enc.input_bits, (SAMPLES, n, enc.timesteps))
    return (rng.random((SAMPLES, n, enc.timesteps)) < 0.4).astype(np.int64)


def _stock_netx_output(path: Path, inputs: np.ndarray, layers: int) -> np.ndarray:
    """The output layer's spikes [S, 10, T] from stock netx on Lava's CPU simulator, samples
    one after the other with netx's own reset between them."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    samples, n, steps = inputs.shape
    total = samples * steps + layers
    stream = np.zeros((n, total), dtype=np.int32)
    stream[:, : samples * steps] = inputs.transpose(1, 0, 2).reshape(n, -1)
    stock = netx.hdf5.Network(net_config=str(path), reset_interval=steps, reset_offset=1)
    source, sink = Source(data=stream), Sink(shape=stock.out.shape, buffer=total)
    source.s_out.connect(stock.inp)
    stock.out.connect(sink.a_in)
    try:
        stock.run(condition=RunSteps(num_steps=total),
                  run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        data = sink.data.get().astype(bool)
    finally:
        stock.stop()
    # the output layer's sample s, step t leaves Lava at time step layers + 1 + s*T + t
    return data[:, layers: layers + samples * steps].reshape(-1, samples, steps).transpose(1, 0, 2)


@pytest.mark.parametrize("kind", ["rate", "events"])
def test_binary_input_files_give_randhets_answer_in_stock_netx(kind: str, tmp_path: Path) -> None:
    net = _network(kind, tmp_path)
    with h5py.File(net.path) as f:
        assert len(f["layer"]) == len(net.spec.layers)  # no refusal layer
    inputs = _inputs(net)
    ours = emulate(net, inputs.reshape(SAMPLES, *_features(net), -1),
                   deployment_draws(net, SAMPLES, seed=0)).rasters[-1]
    theirs = _stock_netx_output(net.path, inputs, len(net.layers))
    assert ours.sum() > 0
    assert np.array_equal(theirs, ours.reshape(theirs.shape))


def test_stock_netx_holds_the_written_integers(tmp_path: Path) -> None:
    from lava.lib.dl import netx

    net = _network("rate", tmp_path)
    stock = netx.hdf5.Network(net_config=str(net.path))
    assert [tuple(layer.shape) for layer in stock.layers] == [(12,), (10,)]
    for theirs, ours in zip(stock.layers, net.layers, strict=True):
        w = theirs.synapse.weights.get()
        exp = theirs.synapse.proc_params.get("weight_exp", 0)
        effective = np.asarray(w, dtype=np.float64) * 2.0**exp  # netx rescales by its exponent
        assert np.array_equal(effective, ours.weight)


def test_stock_netx_refuses_a_direct_file_and_says_why(tmp_path: Path) -> None:
    from lava.lib.dl import netx

    net = _network("direct", tmp_path)
    assert net.spec.encoding.input_shift == 4
    # randhet's reader skipped the refusal layer: the integers are the network's
    with h5py.File(net.path) as f:
        assert len(f["layer"]) == len(net.spec.layers) + 1
        assert f["layer/0/type"][0] == b"input"
    for options in ({}, {"num_layers": 1}, {"skip_layers": 1}, {"reset_interval": 8}):
        with pytest.raises(ValueError, match="shifts its sum right by 4 bits") as err:
            netx.hdf5.Network(net_config=str(net.path), **options)
        assert stock_netx_refusal(4) in str(err.value)


def test_the_refusal_changes_nothing_randhet_computes(tmp_path: Path) -> None:
    """The direct file deploys in randhet's emulator as the network it was written from."""
    shape, encoding = ENCODINGS["direct"]
    net = _network("direct", tmp_path)
    again = read_network(write_network(net, tmp_path / "again.net"))
    for a, b in zip(net.layers, again.layers, strict=True):
        assert np.array_equal(a.weight, b.weight)
    x = _inputs(net).reshape(SAMPLES, *shape, encoding.timesteps)
    ours = emulate(net, x, deployment_draws(net, SAMPLES, seed=0)).rasters
    theirs = emulate(again, x, deployment_draws(again, SAMPLES, seed=0)).rasters
    assert all(a.any() and np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
