"""Time per step, latency, throughput and static energy of a deployed run on its placement.

The model is SANA-FE's simple scheduler, the max-affine form Timcheck et al. (arXiv
2601.10035) fit for Loihi 2, with constants from the profile's timing basis
(:class:`~randhet.hardware.EventCosts`). Per core and time step:

* neuron side: ``neurons * neuron_ns + active * neuron_active_extra_ns + spikes *
  spike_out_ns + messages_out * message_out_ns`` (a spike sends one message per core it
  reaches in the next layer);
* message side: ``messages_in * message_in_ns + synops * synaptic_op_ns`` (synops: nonzero
  input x nonzero weight into the core's neurons; a message is one spike arriving at a core);
* the step: the slowest side of the slowest core of every layer, plus the barrier for the
  tiles in use. All layers work at once, each on its own step of its sample's window (the
  pipeline of netx's ``reset_interval`` runs).

Counts come from the emulator's rasters and the placement of :mod:`randhet.deploy.fit`; a
core's active neurons are its share of its layer's active updates in that sample (the emulator
counts them per layer). Not modelled: network-on-chip hops and congestion (SANA-FE's simple
scheduler leaves them out too), the host's input and output, more than one chip. Latency is
``(T + L - 1)`` steps for L spiking layers; throughput is one sample per T steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from randhet.deploy.fit import FitReport, LayerFit
from randhet.deploy.result import RunResult
from randhet.deploy.synapses import output_padding
from randhet.hardware import EventCosts, HardwareProfile
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import ConvSpec, DenseSpec

NS = 1e-9
NOT_MODELLED = ("network-on-chip hops and congestion", "the host's input and output",
                "more than one chip")


@dataclass(frozen=True)
class LayerTiming:
    """One layer's busiest core, averaged over samples and steps (seconds per step)."""

    name: str
    cores: int
    busiest_core: int
    busiest_core_s: float  # that core's slower side, mean per step
    bound_by: str  # "neurons" or "messages": the core's slower side
    dominant_term: str  # the largest term of that side
    neuron_side_s: float  # the busiest core's sides, mean per step
    message_side_s: float
    static_energy_joules: float  # the layer's share of static energy (its cores), per sample
    dynamic_energy_joules: float | None  # its events at the basis's energies (None: none)


@dataclass(frozen=True)
class TimingReport:
    """Time, throughput and energy of one sample on the chip's placement (seconds, joules)."""

    basis: str
    source: str
    placement: str  # which cut the times are for
    time_per_step_s: float  # mean over samples and steps
    slowest_step_s: float
    barrier_s: float
    bounding_layer: str  # the layer whose core bounds most steps
    latency_s_per_sample: float
    pipeline_steps: int  # T + L - 1
    throughput_samples_per_s: float
    static_power_w: float | None  # per chip (None: unknown)
    chips: int
    static_energy_joules_per_sample: float | None
    dynamic_energy_joules_per_sample: float
    dynamic_energy_source: str  # the basis's event energies, or the profile's [energy] table
    energy_joules_per_sample: float | None
    energy_delay_product_js: float | None  # energy x latency
    layers: tuple[LayerTiming, ...]
    terms_not_in_basis: tuple[str, ...]
    not_modelled: tuple[str, ...] = NOT_MODELLED
    formula: str = ("step = max over cores of max(neurons*neuron_ns + active*active_extra_ns + "
                    "spikes*spike_out_ns + messages_out*message_out_ns, messages_in*"
                    "message_in_ns + synops*synaptic_op_ns) + barrier(tiles)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_cut_order(x: np.ndarray, shape: tuple[int, ...], order: str | None) -> np.ndarray:
    """[S, *shape, T] -> [S, N, T] with the neurons in the cut's order."""
    s, t = x.shape[0], x.shape[-1]
    if order in ("HWC", "WHC") and len(shape) == 3:
        axes = (0, 2, 3, 1, 4) if order == "HWC" else (0, 3, 2, 1, 4)
        x = x.reshape(s, *shape, t).transpose(axes)
    return x.reshape(s, -1, t)


def _per_core(x: np.ndarray, p: int) -> np.ndarray:
    """[S, N, T] -> [S, cores, T]: sums over consecutive blocks of ``p`` neurons."""
    s, n, t = x.shape
    cores = math.ceil(n / p)
    pad = np.zeros((s, cores * p - n, t), dtype=x.dtype)
    return np.concatenate([x, pad], axis=1).reshape(s, cores, p, t).sum(axis=2)


def _synops(layer: ExportedLayer, spikes: np.ndarray) -> np.ndarray:
    """Per neuron and step: nonzero inputs x nonzero weights into it, [S, *shape, T]."""
    x = torch.as_tensor(spikes != 0, dtype=torch.float32)
    mask = torch.as_tensor(layer.weight != 0, dtype=torch.float32)
    if isinstance(layer.spec, DenseSpec):
        out = torch.einsum("oi,sit->sot", mask, x.reshape(x.shape[0], -1, x.shape[-1]))
        return out.numpy()
    ls = layer.spec
    assert isinstance(ls, ConvSpec)
    s, t = x.shape[0], x.shape[-1]
    frames = x.reshape(s, *ls.in_shape, t).permute(0, 4, 1, 2, 3).reshape(s * t, *ls.in_shape)
    out = torch.nn.functional.conv2d(frames, mask, stride=ls.strides, padding=ls.paddings,
                                     groups=ls.groups)
    return out.reshape(s, t, *out.shape[1:]).permute(0, 2, 3, 4, 1).numpy()


def _reach(layer: ExportedLayer, fit: LayerFit) -> np.ndarray:
    """[inputs, cores]: True where an input neuron (flat C, H, W) has a nonzero synapse into a
    core of ``layer``."""
    p = int(fit.neurons_per_core or layer.neurons)
    cores = math.ceil(layer.neurons / p)
    if isinstance(layer.spec, DenseSpec):
        w = layer.weight != 0
        out = np.zeros((w.shape[1], cores), dtype=bool)
        for c in range(cores):
            out[:, c] = w[c * p:(c + 1) * p].any(axis=0)
        return out
    ls = layer.spec
    assert isinstance(ls, ConvSpec)
    owner = np.arange(layer.neurons)  # position in cut order -> core
    flat = in_cut_order(owner.reshape(1, *ls.out_shape, 1).astype(np.int64), ls.out_shape,
                 fit.order)[0, :, 0]
    core_of = np.empty(layer.neurons, dtype=np.int64)
    core_of[flat] = np.arange(layer.neurons) // p
    ind = torch.zeros((cores, layer.neurons), dtype=torch.float32)
    ind[torch.as_tensor(core_of), torch.arange(layer.neurons)] = 1.0
    kernel = torch.as_tensor(layer.weight != 0, dtype=torch.float32)
    back = torch.nn.functional.conv_transpose2d(
        ind.reshape(cores, *ls.out_shape), kernel, stride=ls.strides, padding=ls.paddings,
        groups=ls.groups, output_padding=output_padding(ls))
    return (back.reshape(cores, -1) > 0.5).T.numpy()


# the events of the model: (name, side, its time and energy fields in EventCosts)
EVENTS = (("neuron updates", "neurons", "neuron_ns", "neuron_pj"),
          ("active neuron updates", "neurons", "neuron_active_extra_ns",
           "neuron_active_extra_pj"),
          ("spikes out", "neurons", "spike_out_ns", "spike_out_pj"),
          ("messages out", "neurons", "message_out_ns", "message_out_pj"),
          ("messages in", "messages", "message_in_ns", "message_in_pj"),
          ("synaptic ops", "messages", "synaptic_op_ns", "synaptic_op_pj"))


@dataclass(frozen=True)
class _Sides:
    neuron: np.ndarray  # [S, cores, T] seconds
    message: np.ndarray
    terms: dict[str, np.ndarray]  # event -> [S, cores, T] seconds
    joules: float | None  # the layer's events at the basis's energies, per sample


def _cost(tc: EventCosts, field: str, conv: bool) -> float | None:
    """The basis's cost of one event (a conv layer's synapses at their own cost, if given)."""
    if conv and field in ("synaptic_op_ns", "synaptic_op_pj"):
        own = getattr(tc, f"conv_{field}")
        if own is not None:
            return own
    return getattr(tc, field)


def _layer_sides(k: int, net: ExportedNetwork, fits: tuple[LayerFit, ...], inputs: np.ndarray,
                 result: RunResult, tc: EventCosts) -> _Sides:
    layer, fit = net.layers[k], fits[k]
    p = int(fit.neurons_per_core or layer.neurons)
    order = fit.order
    raster = result.rasters[k].astype(np.float32)
    s, steps = raster.shape[0], raster.shape[-1]
    spikes = _per_core(in_cut_order(raster, layer.shape, order), p)
    neurons = _per_core(np.ones((1, layer.neurons, 1), dtype=np.float32), p)  # [1, C, 1]
    share = (np.asarray(result.active_steps[k], dtype=np.float64)
             / (layer.neurons * steps)).reshape(s, 1, 1)
    if k + 1 < len(net.layers):  # messages: one per (spike, core reached in the next layer)
        reach = _reach(net.layers[k + 1], fits[k + 1])
        per_neuron = reach.sum(axis=1).astype(np.float32).reshape(1, *layer.shape, 1)
        messages_out = _per_core(in_cut_order(raster * per_neuron, layer.shape, order), p)
    else:
        messages_out = np.zeros_like(spikes)
    source = inputs if k == 0 else result.rasters[k - 1]
    if layer.weight.size:  # netx's input layer has no synapses and receives no messages
        syn = _per_core(in_cut_order(_synops(layer, source), layer.shape, order), p)
        reach_in = _reach(layer, fit).astype(np.float32)
        flat_in = (source != 0).reshape(s, -1, steps).astype(np.float32)
        messages_in = np.einsum("sit,ic->sct", flat_in, reach_in)
    else:
        syn = messages_in = np.zeros_like(spikes)
    zero = np.zeros_like(spikes)
    counts = dict(zip((e[0] for e in EVENTS),
                      (neurons + zero, neurons * share + zero, spikes, messages_out, messages_in,
                       syn), strict=True))  # [S, cores, T] events
    conv = isinstance(layer.spec, ConvSpec)
    terms = {name: counts[name] * (_cost(tc, ns, conv) or 0) * NS for name, _, ns, _ in EVENTS}
    neuron = sum(terms[name] for name, side, _, _ in EVENTS if side == "neurons")
    message = sum(terms[name] for name, side, _, _ in EVENTS if side == "messages")
    joules = None
    if tc.synaptic_op_pj is not None:  # a basis with energies
        joules = sum(float(counts[name].sum(axis=(1, 2)).mean()) * (_cost(tc, pj, conv) or 0)
                     for name, _, _, pj in EVENTS) * 1e-12
    return _Sides(neuron, message, terms, joules)


def timed_placement(fit: FitReport) -> tuple[tuple[LayerFit, ...], int, int, str] | None:
    """The layers, cores and chips the times are for: the fit's, or where only decay profiles
    keep a layer off its cores, the cut that respects them (None: it cannot be placed)."""
    if fit.fits:
        return fit.layers, int(fit.total_cores or 0), int(fit.chips or 1), "the resource fit"
    limited = fit.profile_limited
    if limited is None:
        return None
    layers = tuple(replace(ly, cores=ly.profile_cut["cores"],
                           neurons_per_core=ly.profile_cut["neurons_per_core"])
                   if ly.profile_cut else ly for ly in fit.layers)
    return layers, limited["cores"], limited["chips"], "every core within its decay profiles"


def step_times(net: ExportedNetwork, inputs: np.ndarray, result: RunResult, fit: FitReport,
               profile: HardwareProfile, dynamic_joules: float,
               basis: str | None = None) -> TimingReport | None:
    """The timing model on ``fit``'s placement (None: the profile has no timing basis or the
    network does not fit). The dynamic energy is the basis's own where it prices its events,
    else ``dynamic_joules`` (the profile's ``[energy]`` estimate)."""
    chosen = profile.timing_basis(basis)
    placed = timed_placement(fit)
    if chosen is None or placed is None:
        return None
    name, tc = chosen
    placed_layers, cores, chips, placement = placed
    sides = [_layer_sides(k, net, placed_layers, inputs, result, tc)
             for k in range(len(net.layers))]
    per_layer = [np.maximum(sd.neuron, sd.message).max(axis=1) for sd in sides]  # [S, T]
    barrier = tc.barrier(math.ceil(cores / tc.cores_per_tile)) * NS
    slowest = np.stack(per_layer)  # [L, S, T]
    step = slowest.max(axis=0) + barrier
    mean_step = float(step.mean())
    steps = inputs.shape[-1]
    depth = steps + len(net.layers) - 1
    latency = depth * mean_step
    static_w = profile.energy.static_power_w_per_chip
    static = None if static_w is None else static_w * chips * steps * mean_step
    own = [sd.joules for sd in sides]
    if all(j is not None for j in own):  # the basis prices the same events it times
        dynamic_joules = float(sum(j for j in own if j is not None))
        dynamic_source = f"this basis's event energies ({name})"
    else:
        dynamic_source = f"the profile's [energy] table ({profile.energy.energy_basis})"
    total = None if static is None else static + dynamic_joules
    layers = []
    for fl, sd in zip(placed_layers, sides, strict=True):
        neuron, message = sd.neuron.mean(axis=(0, 2)), sd.message.mean(axis=(0, 2))
        busiest = int(np.maximum(neuron, message).argmax())
        side = "neurons" if neuron[busiest] >= message[busiest] else "messages"
        keys = [e[0] for e in EVENTS if e[1] == side]
        dominant = max(keys, key=lambda key: float(sd.terms[key][:, busiest].mean()))
        layer_static = None if static is None else static * (fl.cores or 0) / max(cores, 1)
        layers.append(LayerTiming(fl.name, int(fl.cores or 0), busiest,
                                  float(max(neuron[busiest], message[busiest])), side,
                                  dominant, float(neuron[busiest]), float(message[busiest]),
                                  float(layer_static or 0.0), sd.joules))
    bounding = int(np.bincount(slowest.argmax(axis=0).reshape(-1)).argmax())
    missing = tuple(f for _, _, ns, pj in EVENTS for f in (ns, pj)
                    if getattr(tc, f) is None and (f.endswith("_ns") or tc.synaptic_op_pj))
    return TimingReport(
        basis=name, source=tc.source, placement=placement, time_per_step_s=mean_step,
        slowest_step_s=float(step.max()), barrier_s=barrier,
        bounding_layer=fit.layers[bounding].name, latency_s_per_sample=latency,
        pipeline_steps=depth, throughput_samples_per_s=1.0 / (steps * mean_step),
        static_power_w=static_w, chips=chips, static_energy_joules_per_sample=static,
        dynamic_energy_joules_per_sample=dynamic_joules, dynamic_energy_source=dynamic_source,
        energy_joules_per_sample=total,
        energy_delay_product_js=None if total is None else total * latency,
        layers=tuple(layers), terms_not_in_basis=missing)
