"""Activity, synaptic operations and energy of a deployed run, per layer and in total.

NeuroBench definitions, per sample, on the exported integer weights:

* activation sparsity: zero outputs / all outputs of the spiking neurons over every step;
* effective SynOps: nonzero input x nonzero weight pairs, each nonzero input (a spike or a
  nonzero graded value) counted once per step in which it is nonzero;
* dense SynOps: every (input, output) pair, zero weights included, at every step;
* neuron updates: neurons x T; active updates: neuron-steps with nonzero u or v.

A layer's SynOps are those of its incoming synapses. The energy is the profile's
:func:`~randhet.hardware.estimate_energy` applied to the network's counts, and to each layer's
alone (the formula is linear, so the layers add up to the total). The ANN reference prices the
MACs of the same network run once as a float ANN (every synapse once, zero weights included) at
Horowitz 45 nm: a software comparison, not neuromorphic hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from randhet import metrics
from randhet.deploy.reports import Activity, AnnReference, ChipCost, LayerActivity
from randhet.deploy.result import RunResult
from randhet.deploy.synapses import synapse_counts
from randhet.deploy.timing import TimingReport
from randhet.hardware import (
    EnergyEstimate,
    HardwareProfile,
    estimate_ann_energy,
    estimate_energy,
)
from randhet.layer_tokens import layer_names
from randhet.network import ExportedNetwork

SYNOPS_UNIT = "synaptic operations per sample, on the exported integer weights"


@dataclass(frozen=True)
class LayerCounts:
    """One spiking layer's operation counts; arrays hold one value per sample."""

    name: str
    neurons: int
    spikes: np.ndarray  # [S] spikes sent by the layer
    synops_effective: np.ndarray  # [S] into the layer
    synops_dense: int  # per sample, into the layer
    synapses: int  # all synapses into the layer (one step, zero weights included)
    neuron_updates: int  # neurons x T
    active_updates: np.ndarray  # [S] neuron-steps with nonzero u or v


def layer_counts(net: ExportedNetwork, inputs: np.ndarray, result: RunResult) -> list[LayerCounts]:
    """Counts per spiking layer for integer inputs [S, *input, T] and the run's rasters."""
    samples, steps = inputs.shape[0], inputs.shape[-1]
    prev = np.count_nonzero(inputs, axis=-1)  # [S, *input]: steps with a nonzero input
    out = []
    for name, layer, raster, active in zip(
        layer_names(net.spec), net.layers, result.rasters, result.active_steps, strict=True
    ):
        nonzero, every = synapse_counts(layer, "pre")
        counts_in = prev.reshape(samples, *nonzero.shape).astype(np.int64)
        spikes_per_neuron = raster.sum(-1)  # [S, *shape]
        out.append(LayerCounts(
            name=name,
            neurons=layer.neurons,
            spikes=spikes_per_neuron.reshape(samples, -1).sum(-1),
            synops_effective=(counts_in * nonzero).reshape(samples, -1).sum(-1),
            synops_dense=int(every.sum()) * steps,
            synapses=int(every.sum()),
            neuron_updates=metrics.neuron_updates(layer.neurons, steps),
            active_updates=np.asarray(active, dtype=np.int64),
        ))
        prev = spikes_per_neuron
    return out


def _energy(profile: HardwareProfile, synops: float, updates: float, active: float,
            spikes: float) -> EnergyEstimate:
    return estimate_energy(profile, synops=synops, neuron_updates=updates,
                           active_neuron_updates=active, spikes=spikes)


def ann_reference(profile: HardwareProfile, macs: int) -> AnnReference:
    """Float-ANN comparison: ``macs`` 32-bit float MACs (J) at the profile's Horowitz figure."""
    a = profile.ann_reference
    return AnnReference(
        macs=int(macs),
        joules_per_sample=estimate_ann_energy(profile, macs=macs),
        formula=f"E = macs*{a.mac_32bit_float_pj:g} pJ",
        definition="the same network run once as a float ANN: one MAC per synapse (zero "
                   "weights included), i.e. the dense SynOps of one step",
        basis=a.basis,
        label="software/ANN comparison, not neuromorphic hardware",
    )


def measure(
    net: ExportedNetwork, inputs: np.ndarray, result: RunResult, profile: HardwareProfile
) -> Activity:
    """Sparsity, SynOps, neuron updates, energy (per layer and total) and the ANN reference."""
    steps = inputs.shape[-1]
    counts = layer_counts(net, inputs, result)
    layers = []
    for c in counts:
        e = _energy(profile, float(c.synops_effective.mean()), float(c.neuron_updates),
                    float(c.active_updates.mean()), float(c.spikes.mean()))
        layers.append(LayerActivity(
            name=c.name, neurons=c.neurons, spikes_per_sample=float(c.spikes.mean()),
            activation_sparsity=metrics.activation_sparsity(c.spikes, c.neurons, steps),
            synops_effective=float(c.synops_effective.mean()), synops_dense=c.synops_dense,
            neuron_updates=c.neuron_updates, active_updates=float(c.active_updates.mean()),
            energy_joules=e.joules_per_sample))
    spikes = np.sum([c.spikes for c in counts], axis=0)
    neurons = sum(c.neurons for c in counts)
    synops = float(np.sum([c.synops_effective for c in counts], axis=0).mean())
    updates = metrics.neuron_updates(neurons, steps)
    active = float(np.sum([c.active_updates.mean() for c in counts]))
    return Activity(
        activation_sparsity=metrics.activation_sparsity(spikes, neurons, steps),
        synops_effective=synops, synops_dense=int(sum(c.synops_dense for c in counts)),
        synops_unit=SYNOPS_UNIT, neuron_updates=updates, active_updates=active,
        energy=_energy(profile, synops, float(updates), active, float(spikes.mean())),
        energy_sources=dict(profile.sources),
        ann_reference=ann_reference(profile, sum(c.synapses for c in counts)),
        layers=tuple(layers),
    )


def profile_table(cost: ChipCost) -> str:
    """Plain-text table of a run's activity: per layer and total, then the energy's formula,
    basis and sources, the ANN reference, the resource fit and what the chip adds."""
    head = ("layer", "neurons", "spikes", "sparsity", "synops eff", "synops dense",
            "updates", "active", "energy uJ")

    def row(name: str, neurons: int, spikes: float, sparsity: float, syn_eff: float,
            syn_dense: int, updates: int, active: float, uj: float) -> tuple[str, ...]:
        return (name, str(neurons), f"{spikes:.1f}", f"{sparsity:.4f}", f"{syn_eff:.0f}",
                f"{syn_dense:d}", f"{updates:d}", f"{active:.1f}", f"{uj * 1e6:.4f}")

    a = cost.activity
    rows = [row(ly.name, ly.neurons, ly.spikes_per_sample, ly.activation_sparsity,
                ly.synops_effective, ly.synops_dense, ly.neuron_updates, ly.active_updates,
                ly.energy_joules) for ly in a.layers]
    e = a.energy
    rows.append(row("total", sum(ly.neurons for ly in a.layers),
                    sum(ly.spikes_per_sample for ly in a.layers), a.activation_sparsity,
                    a.synops_effective, a.synops_dense, a.neuron_updates, a.active_updates,
                    e.joules_per_sample))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                       for i, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, *rows]]
    ann = a.ann_reference
    lines += [
        "(spikes, synops, updates and energy per sample; updates = neurons x T, "
        "active = nonzero u or v)",
        f"energy: {e.joules_per_sample * 1e6:.4f} uJ/sample, {e.formula}",
        f"  basis: {e.basis}",
        *(f"  source {k}: {v}" for k, v in a.energy_sources.items()),
        f"ANN reference ({ann.label}): {ann.joules_per_sample * 1e6:.4f} uJ/sample, "
        f"{ann.formula}, macs = {ann.macs}",
        f"  basis: {ann.basis}",
    ]
    lines.append(f"resources: {cost.fit.summary()}")
    return "\n".join(lines + chip_lines(cost))


def _watts(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g} W"


def chip_lines(cost: ChipCost) -> list[str]:
    """What the chip adds: the datapath, the events, the decay profiles, the redraw traffic
    and the time model, each with its source or 'unknown'."""
    chip, fit, timing = cost.chip, cost.fit, cost.timing
    width = chip.synaptic_input_bits
    lines = [f"datapath: {chip.applied} (q0: {f'{width}-bit' if width else 'unbounded'}, "
             f"u wraps {chip.current_wrap})"]
    for ev in chip.events:
        counts = ", ".join(f"{k} {v}" for k, v in ev.counts.items())
        lines.append(f"  events {ev.name}: {counts}")
    lines.append("  watched: " + "; ".join(f"{k} from {v}"
                                           for k, v in chip.watched_source.items()))
    limit = fit.limits.get("compartment_profiles_per_core")
    for ly in fit.layers:
        if ly.decay_profiles is not None:
            cut = ly.profile_cut
            lines.append(f"decay profiles {ly.name}: busiest core {ly.decay_profiles_core}"
                         f" uses {ly.decay_profiles} (limit {limit})"
                         + (f"; cut to {cut['neurons_per_core']} neurons per core: "
                            f"{cut['cores']} cores" if cut else ""))
    if fit.profile_limited:
        lim = fit.profile_limited
        lines.append(f"with decay profiles respected: {lim['cores']} cores, {lim['chips']} "
                     "chip(s)")
    redraw = fit.redraw()
    if redraw:
        lines.append(f"redraw traffic: {redraw['register_writes_per_sample']:.0f} register "
                     f"writes, {redraw['bytes_per_sample']:.0f} bytes per sample; time per "
                     f"write {redraw['time_per_write']}, energy "
                     f"{redraw['energy_joules_per_sample']}")
    if timing is not None:
        lines += timing_lines(timing)
    else:
        lines.append(f"time per step: unknown ({cost.timing_missing})")
    return lines


def _us(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds * 1e6:.3f} us"


def _uj(joules: float | None) -> str:
    return "unknown" if joules is None else f"{joules * 1e6:.4f} uJ"


def timing_lines(timing: TimingReport) -> list[str]:
    """The time model's answer: time per step, latency, throughput, energy and what bounds
    each layer, with its basis and what it leaves out."""
    t = timing
    lines = [f"time per step ({t.basis}): {_us(t.time_per_step_s)} mean, "
             f"slowest {_us(t.slowest_step_s)}, barrier {_us(t.barrier_s)}; "
             f"bound by {t.bounding_layer}",
             f"  latency {_us(t.latency_s_per_sample)} per sample "
             f"({t.pipeline_steps} steps with the pipeline), throughput "
             f"{t.throughput_samples_per_s:.1f} samples/s",
             f"  energy per sample: dynamic {_uj(t.dynamic_energy_joules_per_sample)}, "
             f"static {_uj(t.static_energy_joules_per_sample)} "
             f"({_watts(t.static_power_w or 'unknown')} x {t.chips} chip(s)), "
             f"total {_uj(t.energy_joules_per_sample)}; energy-delay product "
             + ("unknown" if t.energy_delay_product_js is None
                else f"{t.energy_delay_product_js:.3g} J s"),
             f"  dynamic energy from {t.dynamic_energy_source}",
             f"  basis: {t.source}"]
    for ly in t.layers:
        lines.append(f"  {ly.name}: {ly.cores} core(s), busiest core {ly.busiest_core}"
                     f" {_us(ly.busiest_core_s)} per step, bound by its {ly.bound_by} "
                     f"({ly.dominant_term})")
    if t.terms_not_in_basis:
        lines.append("  terms this basis does not publish (cost 0): "
                     + ", ".join(t.terms_not_in_basis))
    lines.append("  not modelled: " + ", ".join(t.not_modelled))
    return lines
