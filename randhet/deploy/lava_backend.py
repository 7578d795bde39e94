"""Run an exported RandHet network as Lava processes on the bit-accurate CPU simulator.

Graph: ``RingBuffer`` (input spikes; graded payloads for direct encoding) -> per spiking layer
a synapse (Lava's bit-accurate ``Dense``, or ``Conv``; the first synapse right-shifts graded
input by the encoding's ``input_shift`` through its weight exponent) -> :class:`RandHetLIF`.
Flatten is a port reshape (Lava's (x, y, channel) order back to torch's (channel, y, x)).
All samples stream through ONE compiled network; each layer is one step behind the previous
one (the synapse delay), so layer k's sample windows start at ``offset = k + 1``. The run is
split into chunks of steps (same compiled network, continued) only to report progress. Only the
packed spike rasters and activity counts are read back; the runtime is always stopped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from randhet.decays import DecayDraw
from randhet.deploy.lava_procs import WORD_BITS
from randhet.deploy.result import RunResult
from randhet.loihi import LAVA, Datapath
from randhet.network import ExportedNetwork
from randhet.spec import ConvSpec, FlattenSpec

SIM_TAG = "fixed_pt"

def unpack_rasters(words: np.ndarray, timesteps: int) -> np.ndarray:
    """[S, W, ...] packed raster words (bit k of word w = step ``w * WORD_BITS + k``, as
    :class:`~randhet.deploy.lava_procs.randhet_lif.RandHetLIF` writes them) -> [S, ..., T] bool."""
    bits = (words[..., None] >> np.arange(WORD_BITS, dtype=np.int64)) & 1  # [S, W, ..., 32]
    bits = np.moveaxis(bits, 1, -2)  # [S, ..., W, 32]
    return bits.reshape(*bits.shape[:-2], -1)[..., :timesteps].astype(bool)


def read_exact_ints(var: object) -> np.ndarray:
    """A Var's integers as int64, refused if any did not survive Lava's float64 read-back
    (exact only below 2**53 in magnitude)."""
    values = np.asarray(var.get())  # type: ignore[attr-defined]
    if values.dtype.kind == "f" and (np.abs(values) >= 2.0 ** 53).any():
        raise RuntimeError(f"Var {getattr(var, 'name', '?')} holds integers beyond 2**53, "
                           "which Lava's float64 read-back cannot return exactly")
    return values.astype(np.int64)


def to_lava(a: np.ndarray, spatial: bool) -> np.ndarray:
    """Torch (C, H, W) trailing axes -> Lava (x, y, channel) = (W, H, C)."""
    return np.ascontiguousarray(np.moveaxis(a, (-3, -2, -1), (-1, -2, -3))) if spatial else a


def from_lava(a: np.ndarray, spatial: bool) -> np.ndarray:
    """Lava (W, H, C) trailing axes -> torch (C, H, W)."""
    return np.ascontiguousarray(np.moveaxis(a, (-3, -2, -1), (-1, -2, -3))) if spatial else a


def decay_table(d: np.ndarray, shape: tuple[int, ...], steps: int, spatial: bool) -> np.ndarray:
    """A [S, *noise(, T)] draw -> RandHetLIF table [S(, T), *lava_shape] (int64)."""
    per_step = d.ndim == len(shape) + 2
    full = (d.shape[0], *shape, steps) if per_step else (d.shape[0], *shape)
    d = np.broadcast_to(d, full).astype(np.int64)
    if per_step:
        d = np.moveaxis(d, -1, 1)
    return to_lava(d, spatial)


def run_lava(
    net: ExportedNetwork,
    inputs: np.ndarray,
    draws: list[DecayDraw],
    chunk_samples: int = 50,
    on_progress: Callable[[int], None] | None = None,
    datapath: Datapath = LAVA,
) -> RunResult:
    """Run all samples through Lava; ``inputs`` are integer input spikes [S, *input, T]
    (payloads for direct encoding), ``draws`` the per-layer integer decays
    (:func:`randhet.decays.deployment_draws`), ``datapath`` the overflow rules the neurons
    follow (Lava's, or a chip's from its profile). ``on_progress(samples_done)`` is called
    after each chunk."""
    # Lava takes seconds to import: only when a network runs on it (the emulator needs none)
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer

    from randhet.deploy.lava_procs.randhet_lif import RandHetLIF
    from randhet.deploy.lava_procs.shifted_conv import ShiftedConv

    samples, steps = inputs.shape[0], inputs.shape[-1]
    n_spiking = len(net.layers)
    total = samples * steps + n_spiking
    first_conv = isinstance(net.layers[0].spec, ConvSpec)
    if first_conv:
        frames = to_lava(np.moveaxis(inputs, -1, 1), True)  # [S, T, W, H, C]
    else:
        frames = np.moveaxis(inputs.reshape(samples, -1, steps), -1, 1)  # [S, T, features]
    frames = frames.reshape(samples * steps, *frames.shape[2:])
    stream = np.zeros((*frames.shape[1:], total), dtype=np.int32)
    stream[..., : samples * steps] = np.moveaxis(frames, 0, -1)
    source = RingBuffer(data=stream)
    graded = net.spec.encoding.kind == "direct"
    shift = net.spec.encoding.input_shift
    prev_port = source.s_out
    prev_spatial = first_conv
    flatten_next = False
    neurons = []
    k = 0
    for ls in net.spec.layers:
        if isinstance(ls, FlattenSpec):
            flatten_next = prev_spatial
            continue
        layer = net.layers[k]
        msg_bits = 24 if (k == 0 and graded) else 0
        exp = -shift if k == 0 else 0
        spatial = isinstance(ls, ConvSpec)
        if spatial:
            w = layer.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # (out, kx, ky, in)
            cls = ShiftedConv if exp else Conv
            syn = cls(
                weight=np.ascontiguousarray(w).astype(np.int32),
                input_shape=tuple(int(n) for n in to_lava(np.empty(ls.in_shape), True).shape),
                padding=ls.paddings, stride=ls.strides,
                dilation=(1, 1), groups=ls.groups, num_message_bits=msg_bits, weight_exp=exp,
            )
        else:
            syn = Dense(weights=layer.weight.astype(np.int32), num_message_bits=msg_bits,
                        weight_exp=exp, num_weight_bits=8)
        lava_shape = to_lava(np.empty(layer.shape), spatial).shape
        lif = RandHetLIF(
            shape=lava_shape,
            current_decays=decay_table(draws[k].current.numpy(), layer.shape, steps, spatial),
            voltage_decays=decay_table(draws[k].voltage.numpy(), layer.shape, steps, spatial),
            vth=layer.threshold_mant, timesteps=steps, offset=k + 1,
            q_bits=datapath.synaptic_input_bits or 0,
            twos_complement=datapath.current_wrap == "twos_complement",
        )
        if flatten_next:
            prev_port.transpose([2, 1, 0]).flatten().connect(syn.s_in)
        else:
            prev_port.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        prev_port, prev_spatial, flatten_next = lif.s_out, spatial, False
        neurons.append((lif, spatial))
        k += 1
    cfg = Loihi2SimCfg(select_tag=SIM_TAG)
    chunk = max(1, chunk_samples) * steps
    done = 0
    try:
        while done < total:
            n = min(chunk, total - done)
            source.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
            done += n
            if on_progress is not None:
                on_progress(min(samples, max(0, done - n_spiking) // steps))
        words = [from_lava(read_exact_ints(lif.spike_words), sp) for lif, sp in neurons]
        active = [read_exact_ints(lif.active_steps) for lif, _ in neurons]
    finally:
        if source.runtime is not None:
            source.stop()
    return RunResult([unpack_rasters(w, steps) for w in words], active)
