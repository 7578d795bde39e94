"""Run an exported RandHet network as Lava processes on the bit-accurate CPU simulator.

Graph: ``RingBuffer`` (input spikes, graded for direct encoding) -> per layer ``Dense``
(Lava's bit-accurate synapse; the first one right-shifts graded input by the encoding's
``input_shift`` through its weight exponent) -> :class:`RandHetLIF`. All samples stream through
ONE compiled network; each layer is one step behind the previous one (the Dense delay), so
layer k's sample windows start at ``offset = k + 1``. The run is split into chunks of steps
(same compiled network, continued) only to report progress. Only the packed spike rasters and
activity counts are read back, and the runtime is stopped even when something fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from randhet.export.netx import ExportedNetwork

SIM_TAG = "fixed_pt"


@dataclass(frozen=True)
class LavaResult:
    rasters: list[np.ndarray]  # per layer [S, n, T] bool
    active_steps: list[np.ndarray]  # per layer [S]: neuron-steps with nonzero u or v


def unpack_rasters(bits: np.ndarray, timesteps: int) -> np.ndarray:
    """[S, n] int64 bit-packed rasters -> [S, n, T] bool."""
    return ((bits[..., None] >> np.arange(timesteps, dtype=np.int64)) & 1).astype(bool)


def run_lava(
    net: ExportedNetwork,
    inputs: np.ndarray,
    current_decays: list[np.ndarray],
    voltage_decays: list[np.ndarray],
    chunk_samples: int = 50,
    on_progress: Callable[[int], None] | None = None,
) -> LavaResult:
    """Run all samples; ``inputs`` are integer input spikes [S, features, T] (graded payloads
    for direct encoding), ``current_decays`` / ``voltage_decays`` per layer [S, n] integers.
    ``on_progress(samples_done)`` is called after each chunk."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer

    from randhet.deploy.lava_procs.randhet_lif import RandHetLIF

    samples, features, steps = inputs.shape
    layers = net.spec.layers
    total = samples * steps + len(layers)
    stream = np.zeros((features, total), dtype=np.int32)
    stream[:, : samples * steps] = inputs.transpose(1, 0, 2).reshape(features, -1)
    source = RingBuffer(data=stream)
    graded = net.spec.encoding.kind == "direct"
    prev = source.s_out
    neurons = []
    for k, layer in enumerate(net.layers):
        dense = Dense(
            weights=layer.weight.astype(np.int32),
            num_message_bits=24 if (k == 0 and graded) else 0,
            weight_exp=-net.spec.encoding.input_shift if k == 0 else 0,
            num_weight_bits=8,
        )
        lif = RandHetLIF(
            current_decays=current_decays[k],
            voltage_decays=voltage_decays[k],
            vth=layer.threshold_mant,
            timesteps=steps,
            offset=k + 1,
        )
        prev.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        prev = lif.s_out
        neurons.append(lif)
    cfg = Loihi2SimCfg(select_tag=SIM_TAG)
    chunk = max(1, chunk_samples) * steps
    done = 0
    try:
        while done < total:
            n = min(chunk, total - done)
            source.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
            done += n
            if on_progress is not None:
                on_progress(min(samples, max(0, done - len(layers)) // steps))
        bits = [np.asarray(lif.spike_bits.get(), dtype=np.int64) for lif in neurons]
        active = [np.asarray(lif.active_steps.get(), dtype=np.int64) for lif in neurons]
    finally:
        if source.runtime is not None:
            source.stop()
    return LavaResult([unpack_rasters(b, steps) for b in bits], active)
