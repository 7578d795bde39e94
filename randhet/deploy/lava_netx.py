"""``--backend lava`` for a stock netx file: lava-dl's own ``netx.hdf5.Network`` on Lava's CPU
simulator (fixed-point models), the network exactly as lava-dl builds it from the file.

Samples run back to back with netx's ``reset_interval = T`` (each layer's state is zeroed at
the start of its own window, one step later per layer: the pipeline's depth). A network with
netx's input layer takes each sample as its neurons' bias mantissas (written before the
sample's T steps); one without reads binary input spikes through ``net.inp``. Every layer's
``out`` port feeds a sink, so every raster comes back: layer k's step t of sample s is Lava
step ``s * T + k + 1 + t`` (the input layer is k = 0; flatten is no layer in netx).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from randhet.deploy.result import RunResult
from randhet.errors import UserError
from randhet.network import ExportedNetwork


def _chw(data: np.ndarray) -> np.ndarray:
    """netx's (W, H, C, steps) sink data as (C, H, W, steps); vectors unchanged."""
    return data.transpose(2, 1, 0, 3) if data.ndim == 4 else data


def run_netx_lava(net: ExportedNetwork, inputs: np.ndarray,
                  on_progress: Callable[[int], None] | None = None) -> RunResult:
    """Rasters of every spiking layer [S, *shape, T] for the integer ``inputs`` [S, *input, T]
    (the input layer's bias mantissas, constant over T, or binary spikes)."""
    from lava.lib.dl import netx  # Lava: only behind the deploy boundary
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    samples, steps = inputs.shape[0], inputs.shape[-1]
    biased = net.has_input_layer
    if biased and not (inputs == inputs[..., :1]).all():
        raise UserError("--backend lava: netx's input layer holds one bias per sample; the "
                        "inputs change within a sample")
    if not biased and not np.isin(inputs, (0, 1)).all():
        raise UserError("--backend lava: a stock netx file without an input layer reads binary "
                        "spikes (netx's unary input); the inputs are not 0/1")
    try:
        stock = netx.hdf5.Network(net_config=str(net.path), reset_interval=steps,
                                  reset_offset=0)
    except NotImplementedError as exc:  # netx 0.6.0 builds no pool, convT or unpool layer
        raise UserError(f"--backend lava: lava-dl's netx cannot build {net.path} ({exc}); "
                        "--backend emulator runs it") from None
    if len(stock.layers) != len(net.layers):
        raise UserError(f"{net.path}: lava-dl builds {len(stock.layers)} layers, randhet reads "
                        f"{len(net.layers)}")
    depth = len(stock.layers)
    total = samples * steps + depth
    sinks = [Sink(shape=layer.out.shape, buffer=total) for layer in stock.layers]
    for layer, sink in zip(stock.layers, sinks, strict=True):
        layer.out.connect(sink.a_in)
    if not biased:
        stream = np.zeros((*stock.inp.shape, total), dtype=np.int32)
        flat = inputs.reshape(samples, -1, steps).transpose(1, 0, 2).reshape(-1, samples * steps)
        stream.reshape(-1, total)[:, :samples * steps] = flat
        Source(data=stream).s_out.connect(stock.inp)
    config = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        for s in range(samples):
            if biased:
                bias = np.transpose(inputs[s, ..., 0], tuple(range(inputs.ndim - 2))[::-1])
                var = stock.layers[0].neuron.bias_mant
                if s == 0:
                    var.init = bias.astype(np.int32)  # before the first run: compiled with it
                else:
                    var.set(bias.astype(np.int32))
            stock.run(condition=RunSteps(num_steps=steps), run_cfg=config)
            if on_progress is not None:
                on_progress(s + 1)
        stock.run(condition=RunSteps(num_steps=depth), run_cfg=config)  # drain the pipeline
        data = [_chw(sink.data.get()).astype(bool) for sink in sinks]
    finally:
        stock.stop()
    rasters = []
    for k, d in enumerate(data):
        window = d[..., k: k + samples * steps]
        rasters.append(np.moveaxis(window.reshape(*d.shape[:-1], samples, steps), -2, 0))
    return RunResult(rasters, [np.zeros(samples, dtype=np.int64) for _ in rasters], None)
