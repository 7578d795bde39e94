"""``--backend lava-stock``: profile-grouped RandHet as *stock* Lava processes, its decays set
from the host: the form of RandHet a Loihi compiler can take, no custom neuron model.

Every group of a layer (a core's profile: :func:`randhet.decays.profile_groups`; a whole layer
when every neuron shares the decays, e.g. sigma = 0) is one stock Lava ``LIF`` process
(bit-accurate fixed-point model) with scalar ``du``/``dv``, fed by stock ``Dense`` processes, one
per group of the layer below (or the input), holding that block of the layer's weights (a conv
layer unrolled into its dense matrix; all-zero blocks left out), whose outputs the ``LIF``'s
input port sums, as a compartment sums its synaptic input (Lava 0.10 compiles no ConcatPort).
A ``RingBuffer`` sink records each group's spikes. Vectors are flat in torch's (C, H, W) order,
so flatten is nothing. Processes grow as groups squared: a tool for small networks and for
showing the form, not for MNIST-sized layers on the CPU.

Samples run one after the other, each in a slot of ``T + L`` steps (L spiking layers; layer k
sees the sample in steps ``k + 2 .. k + 1 + T`` of the slot, the synapse's one-step delay per
layer). Before a slot the host zeroes every ``LIF``'s u and v and every ``Dense``'s buffer and
writes every group's ``du = d_current - 1`` and ``dv = d_voltage`` (Lava's LIF adds the 1 back);
with per-step redraws it runs the slot one step at a time and rewrites each layer's decays
before each step of its window. The host-to-chip writes this takes are counted per sample.

What it does not model: the chip's datapath (stock ``LIF`` runs Lava's: unbounded synaptic
input, Lava's one-sided 24-bit wrap of u), and a conv layer unrolled into ``Dense`` drops
Lava ``Conv``'s 24-bit clamp of the synaptic sum, so a layer whose sum could reach it is
refused. Neuron-update counts are not read back (stock ``LIF`` keeps none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from randhet.decays import DecayDraw, profile_groups
from randhet.deploy.result import RunResult
from randhet.errors import UserError
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import ConvSpec

MAX_SUM = (1 << 23) - 1  # Lava Conv clamps its synaptic sum to 24 bits; Dense does not


@dataclass(frozen=True)
class Group:
    """Neurons of one layer that share their decays: flat (C, H, W) indices, ascending."""

    layer: int
    neurons: np.ndarray


def layer_groups(net: ExportedNetwork, draws: list[DecayDraw]) -> list[list[Group]]:
    """Every layer's groups: its binding's (core, profile) groups, or the whole layer where
    all neurons draw the same decays; UserError for per-neuron (or per-channel) draws."""
    neuron = net.spec.neuron
    out = []
    for k, (layer, draw) in enumerate(zip(net.layers, draws, strict=True)):
        if neuron.granularity == "profile":
            ids = profile_groups(torch.as_tensor(layer.profile_binding), neuron.core_size,
                                 neuron.profiles).numpy()
        else:
            ids = np.zeros(layer.neurons, dtype=np.int64)
        groups = [Group(k, np.flatnonzero(ids == g)) for g in np.unique(ids)]
        for flat in draw.per_neuron(tuple(layer.shape)):  # [S, T', N]
            if any(not (flat[..., g.neurons] == flat[..., g.neurons[:1]]).all() for g in groups):
                raise UserError(
                    f"--backend lava-stock runs neurons that share their decays (one stock LIF "
                    f"per group); spiking layer {k} draws them per "
                    f"{neuron.granularity}: use neuron.granularity = 'profile' (or --backend "
                    "lava)")
        out.append(groups)
    return out


def dense_weight(layer: ExportedLayer) -> np.ndarray:
    """The layer's synapses as a dense integer matrix [neurons, inputs], both flat (C, H, W)."""
    ls = layer.spec
    if not isinstance(ls, ConvSpec):
        return layer.weight
    n_in = int(np.prod(ls.in_shape))
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *ls.in_shape)
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    out = torch.nn.functional.conv2d(basis, w, stride=ls.strides, padding=ls.paddings,
                                     groups=ls.groups)
    return np.rint(out.reshape(n_in, -1).T.numpy()).astype(np.int64)


def _adapters(hardware: bool, graded: bool) -> tuple[Any, Any]:
    """lava-loihi's embedded spike adapters (host -> chip, chip -> host), None on the CPU."""
    if not hardware:
        return None, None
    if graded:
        raise UserError("--backend loihi2: graded input spikes (encoding.kind = 'direct') through "
                        "lava-loihi's spike adapters are not verified by randhet; use "
                        "encoding.kind = 'rate' or 'events', or --backend lava-stock")
    from lava.proc.embedded_io.spike import (  # lava-loihi: only on hardware
        NxToPyAdapter,
        PyToNxAdapter,
    )

    return PyToNxAdapter, NxToPyAdapter


def _hardware_config() -> Any:
    """lava-loihi's run configuration for a Loihi 2."""
    from lava.magma.core.run_configs import Loihi2HwCfg  # lava-loihi: only on hardware

    return Loihi2HwCfg()


def host_writes(groups: list[list[Group]], per_step: bool, steps: int,
                buffers: int) -> dict[str, int]:
    """Host-to-chip writes per sample: decay registers (du, dv of every group, per step for
    per-step redraws) and the state resets (u, v of every neuron and the ``buffers`` entries of
    every synapse's buffer)."""
    n_groups = sum(len(g) for g in groups)
    neurons = sum(len(x.neurons) for g in groups for x in g)
    return {"decay_registers": 2 * n_groups * (steps if per_step else 1),
            "state_resets": 2 * neurons + buffers}


def run_lava_stock(
    net: ExportedNetwork,
    inputs: np.ndarray,
    draws: list[DecayDraw],
    on_progress: Callable[[int], None] | None = None,
    hardware: bool = False,
) -> tuple[RunResult, dict[str, int]]:
    """Run all samples as stock Lava processes (see the module); returns the rasters (no
    neuron-update counts: empty) and the host writes per sample (:func:`host_writes`).

    ``hardware``: on a Loihi 2 through lava-loihi (``Loihi2HwCfg``), with its embedded spike
    adapters between the host's source and sinks and the chip (never run by randhet: no
    hardware was at hand)."""
    # Lava takes seconds to import: only when a network runs on it
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.utils.weightutils import SignMode

    groups = layer_groups(net, draws)
    samples, steps = inputs.shape[0], inputs.shape[-1]
    n_layers = len(net.layers)
    slot = steps + n_layers
    frames = inputs.reshape(samples, -1, steps)
    stream = np.zeros((frames.shape[1], samples * slot), dtype=np.int32)
    for s in range(samples):
        stream[:, s * slot: s * slot + steps] = frames[s]
    source = Source(data=stream)
    graded = net.spec.encoding.kind == "direct"
    to_chip, from_chip = _adapters(hardware, graded)
    source_port = source.s_out
    if to_chip is not None:
        adapter = to_chip(shape=source.s_out.shape)
        source.s_out.connect(adapter.inp)
        source_port = adapter.out
    shift = net.spec.encoding.input_shift
    lifs: list[list[LIF]] = []
    synapses = []
    sinks: list[list[Sink]] = []
    per_step = net.spec.neuron.resample == "step"
    cur, vol = zip(*(d.per_neuron(tuple(ly.shape))
                     for d, ly in zip(draws, net.layers, strict=True)), strict=True)  # [S, T', N]
    for k, layer in enumerate(net.layers):
        w = dense_weight(layer)
        peak = max(int(inputs.max(initial=1)) >> shift, 1) if k == 0 else 1
        if isinstance(layer.spec, ConvSpec) and int(np.abs(w).sum(1).max()) * peak > MAX_SUM:
            raise UserError(f"--backend lava-stock: spiking layer {k}'s synaptic sum could "
                            "reach Lava Conv's 24-bit clamp, which an unrolled Dense lacks; "
                            "use --backend lava")
        # sources: the input, or every group of the layer below (its synapse blocks summed at
        # the LIF's input port, as the chip sums a compartment's synaptic input)
        sources = ([(source_port, np.arange(frames.shape[1]))] if k == 0 else
                   [(lif.s_out, g.neurons) for lif, g in zip(lifs[-1], groups[k - 1],
                                                              strict=True)])
        row = []
        for g in groups[k]:
            lif = LIF(shape=(len(g.neurons),), du=0, dv=0, vth=int(layer.threshold_mant),
                      bias_mant=0, bias_exp=0)
            blocks = [(port, w[np.ix_(g.neurons, cols)]) for port, cols in sources]
            nonzero = [b for b in blocks if b[1].any()] or blocks[:1]
            for port, block in nonzero:
                syn = Dense(weights=block.astype(np.int32), weight_exp=-shift if k == 0 else 0,
                            num_message_bits=24 if (k == 0 and graded) else 0,
                            num_weight_bits=8, sign_mode=SignMode.MIXED)
                port.connect(syn.s_in)
                syn.a_out.connect(lif.a_in)
                synapses.append(syn)
            row.append(lif)
        lifs.append(row)
        sinks.append([])
        for lif in row:
            sink = Sink(shape=lif.s_out.shape, buffer=samples * slot)
            port = lif.s_out
            if from_chip is not None:
                back = from_chip(shape=lif.s_out.shape)
                port.connect(back.inp)
                port = back.out
            port.connect(sink.a_in)
            sinks[-1].append(sink)

    def write(var: object, value: np.ndarray) -> None:
        """Set a Var from the host (its initial value before the network is compiled)."""
        if source.runtime is None:
            var.init = value  # type: ignore[attr-defined]
        else:
            var.set(value)  # type: ignore[attr-defined]

    def set_decays(k: int, s: int, j: int) -> None:
        for g, lif in zip(groups[k], lifs[k], strict=True):
            first = g.neurons[0]
            write(lif.du, np.array([cur[k][s, j, first] - 1]))  # Lava's LIF adds the 1 back
            write(lif.dv, np.array([vol[k][s, j, first]]))

    for k in range(n_layers):  # du, dv as arrays from the start: Lava sets no scalar Var
        set_decays(k, 0, 0)
    cfg = _hardware_config() if hardware else Loihi2SimCfg(select_tag="fixed_pt")
    try:
        for s in range(samples):
            for k in range(n_layers):
                for lif in lifs[k]:
                    write(lif.u, np.zeros(lif.u.shape, dtype=np.int32))
                    write(lif.v, np.zeros(lif.v.shape, dtype=np.int32))
                if not per_step:
                    set_decays(k, s, 0)
            for syn in synapses:
                write(syn.a_buff, np.zeros(syn.a_buff.shape, dtype=np.int32))
            if per_step:
                for t in range(slot):
                    for k in range(n_layers):
                        j = t - (k + 1)  # the window step layer k runs at slot step t + 1
                        if 0 <= j < steps:
                            set_decays(k, s, j)
                    source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            else:
                source.run(condition=RunSteps(num_steps=slot), run_cfg=cfg)
            if on_progress is not None:
                on_progress(s + 1)
        recorded = []
        for k, layer in enumerate(net.layers):
            data = np.zeros((layer.neurons, samples * slot), dtype=np.int64)
            for g, sink in zip(groups[k], sinks[k], strict=True):
                data[g.neurons] = np.asarray(sink.data.get())
            recorded.append(data)
    finally:
        if source.runtime is not None:
            source.stop()
    rasters = []
    for k, (layer, data) in enumerate(zip(net.layers, recorded, strict=True)):
        per_sample = data.reshape(layer.neurons, samples, slot)[:, :, k + 1: k + 1 + steps]
        rasters.append(np.moveaxis(per_sample, 0, 1).reshape(samples, *layer.shape, steps) > 0)
    empty = [np.zeros(samples, dtype=np.int64) for _ in net.layers]
    buffers = sum(int(np.prod(syn.a_buff.shape)) for syn in synapses)
    return RunResult(rasters, empty), host_writes(groups, per_step, steps, buffers)

