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
from typing import Any

import numpy as np

from randhet import metrics
from randhet.deploy.result import RunResult
from randhet.deploy.synapses import synapse_counts
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


def ann_reference(profile: HardwareProfile, macs: int) -> dict[str, Any]:
    """Float-ANN comparison: ``macs`` 32-bit float MACs (J) at the profile's Horowitz figure."""
    a = profile.ann_reference
    return {
        "macs": int(macs),
        "joules_per_sample": estimate_ann_energy(profile, macs=macs),
        "formula": f"E = macs*{a.mac_32bit_float_pj:g} pJ",
        "definition": "the same network run once as a float ANN: one MAC per synapse (zero "
                      "weights included), i.e. the dense SynOps of one step",
        "basis": a.basis,
        "label": "software/ANN comparison, not neuromorphic hardware",
    }


def measure(
    net: ExportedNetwork, inputs: np.ndarray, result: RunResult, profile: HardwareProfile
) -> dict[str, Any]:
    """Sparsity, SynOps, neuron updates, energy (per layer and total) and the ANN reference."""
    steps = inputs.shape[-1]
    counts = layer_counts(net, inputs, result)
    layers_out = []
    for c in counts:
        e = _energy(profile, float(c.synops_effective.mean()), float(c.neuron_updates),
                    float(c.active_updates.mean()), float(c.spikes.mean()))
        layers_out.append({
            "name": c.name,
            "neurons": c.neurons,
            "spikes_per_sample": float(c.spikes.mean()),
            "activation_sparsity": metrics.activation_sparsity(c.spikes, c.neurons, steps),
            "synops_effective": float(c.synops_effective.mean()),
            "synops_dense": c.synops_dense,
            "neuron_updates": {"total": c.neuron_updates, "active": float(c.active_updates.mean())},
            "energy_joules": e.joules_per_sample,
        })
    spikes = np.sum([c.spikes for c in counts], axis=0)
    neurons = sum(c.neurons for c in counts)
    synops = float(np.sum([c.synops_effective for c in counts], axis=0).mean())
    updates = metrics.neuron_updates(neurons, steps)
    active = float(np.sum([c.active_updates.mean() for c in counts]))
    energy = _energy(profile, synops, float(updates), active, float(spikes.mean()))
    return {
        "activation_sparsity": metrics.activation_sparsity(spikes, neurons, steps),
        "synops": {
            "effective": synops,
            "dense": int(sum(c.synops_dense for c in counts)),
            "unit": SYNOPS_UNIT,
        },
        "neuron_updates": {"total": updates, "active": active},
        "energy": {**energy.to_dict(), "sources": dict(profile.sources)},
        "ann_reference": ann_reference(profile, sum(c.synapses for c in counts)),
        "layers": layers_out,
    }


def profile_table(report: dict[str, Any]) -> str:
    """Plain-text table of a profile report: per layer and total, then the energy's formula,
    basis and sources, the ANN reference and the resource fit."""
    head = ("layer", "neurons", "spikes", "sparsity", "synops eff", "synops dense",
            "updates", "active", "energy uJ")

    def row(name: str, d: dict[str, Any], syn_eff: float, syn_dense: int,
            uj: float) -> tuple[str, ...]:
        return (name, str(d["neurons"]), f"{d['spikes_per_sample']:.1f}",
                f"{d['activation_sparsity']:.4f}", f"{syn_eff:.0f}", f"{syn_dense:d}",
                f"{d['neuron_updates']['total']:d}", f"{d['neuron_updates']['active']:.1f}",
                f"{uj * 1e6:.4f}")

    rows = [row(ly["name"], ly, ly["synops_effective"], ly["synops_dense"], ly["energy_joules"])
            for ly in report["layers"]]
    total = {
        "neurons": sum(ly["neurons"] for ly in report["layers"]),
        "spikes_per_sample": sum(ly["spikes_per_sample"] for ly in report["layers"]),
        "activation_sparsity": report["activation_sparsity"],
        "neuron_updates": report["neuron_updates"],
    }
    e = report["energy"]
    rows.append(row("total", total, report["synops"]["effective"], report["synops"]["dense"],
                    e["joules_per_sample"]))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                       for i, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, *rows]]
    ann = report["ann_reference"]
    lines += [
        "(spikes, synops, updates and energy per sample; updates = neurons x T, "
        "active = nonzero u or v)",
        f"energy: {e['joules_per_sample'] * 1e6:.4f} uJ/sample, {e['formula']}",
        f"  basis: {e['basis']}",
        *(f"  source {k}: {v}" for k, v in e["sources"].items()),
        f"ANN reference ({ann['label']}): {ann['joules_per_sample'] * 1e6:.4f} uJ/sample, "
        f"{ann['formula']}, macs = {ann['macs']}",
        f"  basis: {ann['basis']}",
    ]
    if "resources" in report:
        lines.append(f"resources: {report['resources']['summary']}")
    if "chip" in report:
        lines += chip_lines(report)
    return "\n".join(lines)


def _watts(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g} W"


def chip_lines(report: dict[str, Any]) -> list[str]:
    """What the chip adds: the datapath, the events, the decay profiles, the redraw traffic
    and the time model, each with its source or 'unknown'."""
    chip, res, timing = report["chip"], report["resources"], report.get("timing", {})
    source = chip["watched"]["source"]
    width = chip["datapath"]["synaptic_input_bits"]
    lines = [f"datapath: {chip['applied']} (q0: {f'{width}-bit' if width else 'unbounded'}, "
             f"u wraps {chip['datapath']['current_wrap']})"]
    for ev in chip["events"]:
        counts = ", ".join(f"{k} {v}" for k, v in ev.items() if k != "name")
        lines.append(f"  events {ev['name']}: {counts}")
    lines.append("  watched: " + "; ".join(f"{k} from {v}" for k, v in source.items()))
    limit = res["limits"].get("compartment_profiles_per_core")
    for ly in res["layers"]:
        if ly.get("decay_profiles") is not None:
            cut = ly.get("profile_cut")
            lines.append(f"decay profiles {ly['name']}: busiest core {ly['decay_profiles_core']}"
                         f" uses {ly['decay_profiles']} (limit {limit})"
                         + (f"; cut to {cut['neurons_per_core']} neurons per core: "
                            f"{cut['cores']} cores" if cut else ""))
    if res.get("profile_limited"):
        lim = res["profile_limited"]
        lines.append(f"with decay profiles respected: {lim['cores']} cores, {lim['chips']} "
                     "chip(s)")
    if res.get("redraw"):
        r = res["redraw"]
        lines.append(f"redraw traffic: {r['register_writes_per_sample']:.0f} register writes, "
                     f"{r['bytes_per_sample']:.0f} bytes per sample; time per write "
                     f"{r['time_per_write']}, energy {r['energy_joules_per_sample']}")
    if timing:
        lines += timing_lines(timing)
    return lines


def _us(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds * 1e6:.3f} us"


def _uj(joules: float | None) -> str:
    return "unknown" if joules is None else f"{joules * 1e6:.4f} uJ"


def timing_lines(timing: dict[str, Any]) -> list[str]:
    """The time model's answer: time per step, latency, throughput, energy and what bounds
    each layer, with its basis and what it leaves out."""
    if timing.get("time_per_step_s") == "unknown":
        return [f"time per step: unknown ({timing['why']})"]
    lines = [f"time per step ({timing['basis']}): {_us(timing['time_per_step_s'])} mean, "
             f"slowest {_us(timing['slowest_step_s'])}, barrier {_us(timing['barrier_s'])}; "
             f"bound by {timing['bounding_layer']}",
             f"  latency {_us(timing['latency_s_per_sample'])} per sample "
             f"({timing['pipeline_steps']} steps with the pipeline), throughput "
             f"{timing['throughput_samples_per_s']:.1f} samples/s",
             f"  energy per sample: dynamic {_uj(timing['dynamic_energy_joules_per_sample'])}, "
             f"static {_uj(timing['static_energy_joules_per_sample'])} "
             f"({_watts(timing['static_power_w'] or 'unknown')} x {timing['chips']} chip(s)), "
             f"total {_uj(timing['energy_joules_per_sample'])}; energy-delay product "
             + ("unknown" if timing["energy_delay_product_js"] is None
                else f"{timing['energy_delay_product_js']:.3g} J s"),
             f"  dynamic energy from {timing['dynamic_energy_source']}",
             f"  basis: {timing['source']}"]
    for ly in timing["layers"]:
        lines.append(f"  {ly['name']}: {ly['cores']} core(s), busiest core {ly['busiest_core']}"
                     f" {_us(ly['busiest_core_s'])} per step, bound by its {ly['bound_by']} "
                     f"({ly['dominant_term']})")
    if timing["terms_not_in_basis"]:
        lines.append("  terms this basis does not publish (cost 0): "
                     + ", ".join(timing["terms_not_in_basis"]))
    lines.append("  not modelled: " + ", ".join(timing["not_modelled"]))
    return lines
