"""The emulator is bit-exact with Lava, including the 24-bit wrap/saturation SLAYER lacks;
sigma = 0 networks run identically in stock lava-dl netx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from randhet import loihi
from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.lava_backend import run_lava
from randhet.deploy.reference import reference_rasters
from randhet.export import export_run
from randhet.models.exported import model_from_export
from randhet.network import ExportedLayer, ExportedNetwork, read_network
from randhet.spec import DenseSpec, EncodingSpec, NetworkSpec, NeuronSpec
from randhet.train.trainer import train

pytestmark = pytest.mark.lava


def _saturating_network() -> ExportedNetwork:
    """32 inputs all spiking into 8 neurons with the largest weights, no decay: u passes
    2**23 and wraps, v saturates."""
    vth = (1 << 17) - 1
    neuron = NeuronSpec(threshold=vth / 64, current_decay=0.0, voltage_decay=0.0, sigma=0.0)
    spec = NetworkSpec((32,), (DenseSpec(32, 8),), neuron, EncodingSpec("rate", 24), 8)
    weight = np.full((8, 32), 254, dtype=np.int64)
    weight[4:] = -256
    weight[2, :16] = 0
    layer = ExportedLayer(spec.layers[0], weight, 0, 0, vth)
    return ExportedNetwork(spec, (layer,), {}, Path("saturating.net"))


def test_emulator_matches_lava_where_the_state_wraps_and_saturates() -> None:
    net = _saturating_network()
    inputs = np.ones((3, 32, 24), dtype=np.int64)
    draws = deployment_draws(net, 3, seed=0)
    emu = emulate(net, inputs, draws)
    lava = run_lava(net, inputs, draws)
    assert np.array_equal(emu.rasters[0], lava.rasters[0])
    assert np.array_equal(emu.active_steps[0], lava.active_steps[0])
    drive = torch.as_tensor(net.layers[0].weight @ inputs[0]) << loihi.ACT_SHIFT
    u, v, _ = loihi.cuba(drive, torch.tensor(0), torch.tensor(0), net.layers[0].threshold_mant)
    assert u.min() < 0 < u.max()  # neurons 0..3 wrapped from above 2**23 to negative
    assert v.max() == (1 << 23) - 1 and v.min() == -(1 << 23) + 1  # saturated both ways
    # SLAYER (the torch model) has no wrap: it disagrees exactly where the wrap happens
    ref = reference_rasters(model_from_export(net), inputs, draws)[0]
    assert not np.array_equal(ref, emu.rasters[0])
    u_plain, v_plain, s_plain = loihi.cuba(drive, torch.tensor(0), torch.tensor(0),
                                           net.layers[0].threshold_mant, hardware=False)
    assert np.array_equal(s_plain.numpy(), ref[0])


def test_emulator_matches_lava_on_a_trained_dense_network_with_per_step_draws(
    tmp_path: Path, make_tiny_config
) -> None:
    cfg = make_tiny_config("neuron.resample=\"step\"", "train.epochs=1", "neuron.sigma=1.5")
    train(cfg, tmp_path, progress=False)
    net = read_network(export_run(tmp_path))
    model = model_from_export(net)
    from randhet.data import load_dataset

    x = torch.as_tensor(load_dataset(net.data).x_test[:16])
    inputs = model.encoder.to_integer(model.encoder(x)).numpy()
    draws = deployment_draws(net, 16, seed=4)
    assert draws[0].current.shape == (16, 24, 8)  # per sample, neuron and step
    emu, lava = emulate(net, inputs, draws, batch_size=5), run_lava(net, inputs, draws)
    for a, b in zip(emu.rasters, lava.rasters, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(emu.active_steps, lava.active_steps, strict=True):
        assert np.array_equal(a, b)


def test_sigma_zero_network_runs_identically_in_stock_netx(
    tmp_path: Path, make_tiny_config
) -> None:
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    cfg = make_tiny_config('encoding.kind="rate"', "neuron.sigma=0.0", "train.epochs=2")
    train(cfg, tmp_path, progress=False)
    net = read_network(export_run(tmp_path))
    model = model_from_export(net)
    from randhet.data import load_dataset

    samples, steps, layers = 12, net.spec.encoding.timesteps, len(net.layers)
    x = torch.as_tensor(load_dataset(net.data).x_test[:samples])
    inputs = model.encoder.to_integer(model.encoder(x)).numpy().reshape(samples, 64, steps)
    ours = emulate(net, inputs, deployment_draws(net, samples, seed=0)).rasters[-1]

    total = samples * steps + layers
    stream = np.zeros((64, total), dtype=np.int32)
    stream[:, : samples * steps] = inputs.transpose(1, 0, 2).reshape(64, -1)
    stock = netx.hdf5.Network(net_config=str(net.path), reset_interval=steps, reset_offset=1)
    source, sink = Source(data=stream), Sink(shape=stock.out.shape, buffer=total)
    source.s_out.connect(stock.inp)
    stock.out.connect(sink.a_in)
    try:
        stock.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        data = sink.data.get().astype(bool)
    finally:
        stock.stop()
    # the output layer's sample s, step t leaves Lava at time step layers + 1 + s*T + t
    theirs = data[:, layers: layers + samples * steps].reshape(10, samples, steps)
    assert ours.sum() > 0
    assert np.array_equal(theirs.transpose(1, 0, 2), ours)
