"""One sample of a deployed network on SANA-FE 2.2.9's Loihi 1 model (``sanafe``, GPL-3.0:
tests and benchmarks only, never imported by randhet).

The network goes to SANA-FE as randhet placed it: each spiking layer's neurons on the cores of
randhet's cut (``FitReport`` order and neurons per core), the binary input spikes as SANA-FE
input neurons on the next free core, the nonzero synapses only (conv layers unrolled, charged
at SANA-FE's conv synapse cost), SANA-FE's own LIF with Loihi's decays and thresholds (in
units of 64: the same arithmetic except that SANA-FE does not truncate the decayed current,
so rare spikes can move by a step), per-neuron decays from the sample's draw. It runs
``T + L`` steps with SANA-FE's simple timing model (its per-core max-affine scheduler).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from randhet.decays import DecayDraw
from randhet.deploy.fit import LayerFit
from randhet.deploy.lava_stock import dense_weight
from randhet.deploy.timing import in_cut_order
from randhet.network import ExportedNetwork
from randhet.spec import ConvSpec

INPUTS_PER_CORE = 1024  # loihi.yaml's loihi_inputs[0..1023] per core


@dataclass(frozen=True)
class SanafeRun:
    """What SANA-FE measured for one sample."""

    latency_s: float  # the whole run, T + L steps
    energy_j: float
    spikes: list[int]  # per layer
    input_spikes: int  # the input neurons' spikes SANA-FE sent


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """SANA-FE's C++ prints to file descriptor 1."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def core_of(layer_shape: tuple[int, ...], fit: LayerFit, first: int) -> np.ndarray:
    """Each neuron's core (flat C, H, W order), cores numbered from ``first``."""
    n = int(np.prod(layer_shape))
    p = int(fit.neurons_per_core or n)
    flat = in_cut_order(np.arange(n).reshape(1, *layer_shape, 1), layer_shape, fit.order)[0, :, 0]
    out = np.empty(n, dtype=np.int64)
    out[flat] = first + np.arange(n) // p
    return out


def run_stream(net: ExportedNetwork, fits: tuple[LayerFit, ...], spikes: np.ndarray,
               draws: list[DecayDraw], sample: int = 0) -> SanafeRun:
    """``spikes``: binary inputs [n_in, steps] (samples back to back); ``draws``: the
    deployment's, of which ``sample``'s decays are used."""
    import sanafe  # GPL-3.0: tests and benchmarks only

    steps = spikes.shape[-1]
    arch = sanafe.load_loihi()
    cores = arch.cores()
    network = sanafe.Network()
    placed = []
    first = 0
    for layer, fit in zip(net.layers, fits, strict=True):
        placed.append(core_of(tuple(layer.shape), fit, first))
        first += int(fit.cores or 0)
    groups = [network.create_neuron_group("in", len(spikes), log_spikes=True)]
    for i, neuron in enumerate(groups[0]):
        neuron.set_attributes(soma_hw_name=f"loihi_inputs[{i % INPUTS_PER_CORE}]",
                              model_attributes={"spikes": [int(x) for x in spikes[i]]})
        neuron.map_to_core(cores[first + i // INPUTS_PER_CORE])
    for k, layer in enumerate(net.layers):
        hw = "loihi_conv_synapse" if isinstance(layer.spec, ConvSpec) else "loihi_dense_synapse"
        group = network.create_neuron_group(f"L{k}", layer.neurons,
                                            default_synapse_hw_name=hw, log_spikes=True)
        du = draws[k].per_neuron(tuple(layer.shape))[0][sample, 0]
        dv = draws[k].per_neuron(tuple(layer.shape))[1][sample, 0]
        for i, neuron in enumerate(group):
            neuron.set_attributes(model_attributes={
                "threshold": float(layer.threshold_mant),
                "input_decay": (4096 - int(du[i])) / 4096,
                "leak_decay": (4096 - int(dv[i])) / 4096,
                "reset": 0.0, "reset_mode": "hard",
                "reverse_threshold": -((1 << 23) - 1) / 64.0,
                "reverse_reset_mode": "saturate"})
            neuron.map_to_core(cores[int(placed[k][i])])
        groups.append(group)
    for k, layer in enumerate(net.layers):
        w = dense_weight(layer)  # [out, in]
        post, pre = np.nonzero(w)
        groups[k].connect_neurons_sparse(groups[k + 1], {"w": [int(x) for x in w[post, pre]]},
                                         [(int(a), int(b)) for a, b in zip(pre, post,
                                                                           strict=True)])
    with _quiet():
        chip = sanafe.SpikingChip(arch)
        chip.load(network)
        result = chip.sim(steps + len(net.layers), timing_model="simple", spike_trace=True)
    counts, sent = [0] * len(net.layers), 0
    for fired in result["spike_trace"]:
        for address in fired:
            if address.group_name == "in":
                sent += 1
            else:
                counts[int(address.group_name[1:])] += 1
    return SanafeRun(float(result["sim_time"]), float(result["energy"]["total"]), counts, sent)
