"""Does an exported network fit a chip? The cores and chips it needs under a profile's limits.

An estimate of a placement, not a compiler's. The rules:

* every spiking layer gets cores of its own; its neurons are cut into contiguous blocks of
  ``p <= neurons_per_core`` neurons, one block per core, and ``p`` is the largest size (searched
  by bisection) for which every block meets every limit the profile knows. A conv layer is cut
  in channel-major (C, H, W) or channel-minor (H, W, C) order, whichever needs fewer cores;
* synaptic memory of a core: its neurons' nonzero-weight synapses (a conv unrolled: one synapse
  per connection, no kernel sharing) x ``bits.weight_bits`` / 8 bytes. **Weight bits only**:
  index, delay and tag bits are not counted, so memory and the cores it implies are lower bounds;
* fan-in of a core: the distinct input axons its neurons read. Dense: every input
  (``in_features``), however the layer is cut. Conv: the input channels feeding the core's output
  channels x the input pixels under the union of the kernel windows of the core's output
  positions (padding excluded) - an approximation: a compiler may cut a conv differently;
* a layer cannot fit when one neuron alone breaks a limit (its fan-in above
  ``max_fan_in_axons_per_core`` or its synapses above ``synaptic_memory_bytes_per_core``);
* chips: ``ceil(cores / cores_per_chip)``, and ``ceil(nonzero synapses / synapses_per_chip)``
  where the profile gives synapses per chip; the larger wins;
* a limit the profile lacks (``None``, e.g. Loihi 2's synaptic memory) is reported as
  ``"unknown"`` and not checked; ``max_fan_out_per_core`` (routing) is not modelled;
* decay profiles (given the deployed draws): a core's neurons point to at most
  ``compartment_profiles_per_core`` shared (du, dv) pairs. On the placement above the busiest
  core's distinct pairs are counted (per-sample and per-step redraws: the worst sample and step);
  over the limit the layer does not fit, and the block size is cut until every core meets it
  (the cores and chips that takes are reported). Each sample's redraw rewrites two registers per
  profile in use (per step for per-step redraws): the redraw traffic, on the placement that fits;
* profile-grouped RandHet (``granularity = "profile"``) is placed as it was bound: blocks in
  (C, H, W) order that never straddle two of the binding's cores (a block size dividing
  ``core_size``, or the whole layer when it is one binding core), and a core's profiles are the
  binding's profiles among its neurons, whatever values a draw gives them: the host writes
  every bound profile's decayU and decayV at each redraw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from randhet.decays import DecayDraw, profile_groups
from randhet.deploy.placement import compiler_cut
from randhet.deploy.synapses import output_padding, synapse_counts
from randhet.hardware import HardwareProfile
from randhet.layer_tokens import layer_names
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.schema import UNKNOWN
from randhet.spec import ConvSpec, DenseSpec, InputSpec, NeuronSpec

CANNOT_FIT = "cannot fit"
ASSUMPTIONS = (
    "each spiking layer on cores of its own, neurons cut into equal contiguous blocks, one per "
    "core (conv: in (C, H, W) or (H, W, C) order, whichever needs fewer cores)",
    "synaptic memory counts weight bits only (bits.weight_bits per nonzero-weight synapse; "
    "index, delay and tag bits excluded): a lower bound",
    "conv synapses unrolled (one per connection, no kernel sharing)",
    "core fan-in: dense = in_features; conv = input channels x input pixels under the kernel "
    "windows of the core's output positions (an approximation of a compiler's cut)",
    "max_fan_out_per_core (routing) not modelled; a limit the profile lacks is 'unknown'",
    "decay profiles: distinct (du, dv) pairs of a core's neurons in the worst sample and step of "
    "the deployed draws; refractory delay and noise are the same for every neuron; each redraw "
    "writes decayU and decayV of every profile in use",
)
REDRAW_REGISTERS = 2  # decayU and decayV of a compartment profile


@dataclass(frozen=True)
class LayerFit:
    """One layer's needs; ``cores`` and the per-core figures are None when it cannot fit."""

    name: str
    neurons: int
    synapses: int  # nonzero-weight synapses into the layer (conv unrolled)
    synaptic_memory_bytes: int  # synapses x weight bits / 8, rounded up
    neuron_fan_in: int  # input axons of the widest single neuron
    cores_by: dict[str, int | str]  # limit -> cores it alone needs, "unknown", "cannot fit"
    cores: int | None
    order: str | None  # conv neuron order cut into blocks: "CHW" or "HWC" (None: dense)
    neurons_per_core: int | None  # block size p used
    core_fan_in: int | None  # distinct input axons of the busiest core
    core_memory_bytes: int | None  # synaptic memory of the fullest core
    reason: str | None = None  # why it cannot fit
    decay_profiles: int | None = None  # the busiest core's distinct (du, dv) pairs (None: no draws)
    decay_profiles_core: int | None = None  # which core that is
    profile_cut: dict[str, int] | None = None  # neurons_per_core, cores meeting the limit
    redraw_writes_per_sample: float | None = None  # register writes, on the placement that fits
    redraw_writes_busiest_core: float | None = None  # the same, for the core that writes most
    threshold_profiles: int | None = None  # distinct vThMant per core (one per layer)
    compiler_rule: str | None = None  # the profile's [placement] rule that set the cut
    core_memory_words: int | None = None  # the fullest core's synaptic words (that rule's)

    @property
    def fits(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class FitReport:
    """Resource fit of a network on a profile: per layer, total cores and chips."""

    profile: str
    limits: dict[str, int | str]
    bits_per_synapse: int
    layers: tuple[LayerFit, ...]
    decay_bits: int = 12
    write_pj: float | None = None  # energy of one register write (None: unknown)

    @property
    def fits(self) -> bool:
        return all(ly.fits for ly in self.layers)

    @property
    def failing(self) -> list[LayerFit]:
        return [ly for ly in self.layers if not ly.fits]

    @property
    def total_cores(self) -> int | None:
        return sum(ly.cores or 0 for ly in self.layers) if self.fits else None

    @property
    def chips_by(self) -> dict[str, int | str]:
        per_chip = self.limits["synapses_per_chip"]
        synapses = sum(ly.synapses for ly in self.layers)
        return {
            "cores": math.ceil((self.total_cores or 0) / int(self.limits["cores_per_chip"])),
            "synapses": UNKNOWN if per_chip == UNKNOWN else math.ceil(synapses / int(per_chip)),
        }

    @property
    def chips(self) -> int | None:
        if not self.fits:
            return None
        return max(v for v in self.chips_by.values() if isinstance(v, int))

    @property
    def profile_limited(self) -> dict[str, int] | None:
        """Cores and chips once every core meets the decay-profile limit (None: some layer fails
        for another reason, or no layer was over the limit)."""
        if not any(ly.profile_cut for ly in self.layers):
            return None
        if any(ly.cores is None for ly in self.layers):
            return None
        cores = sum(ly.profile_cut["cores"] if ly.profile_cut else int(ly.cores or 0)
                    for ly in self.layers)
        return {"cores": cores,
                "chips": math.ceil(cores / int(self.limits["cores_per_chip"]))}

    def summary(self) -> str:
        """One line: where it fits, or which layers do not and why."""
        if not self.fits:
            why = "; ".join(f"{ly.name}: {ly.reason}" for ly in self.failing)
            cut = self.profile_limited
            if cut is not None:
                why += (f"; with every core within its decay profiles it needs {cut['cores']} "
                        f"cores, {cut['chips']} chip(s)")
            return f"does not fit {self.profile}: {why}"
        unknown = [k for k, v in self.limits.items() if v == UNKNOWN]
        note = f" ({', '.join(unknown)} unknown to the profile, not checked)" if unknown else ""
        return f"fits {self.profile} on {self.total_cores} cores, {self.chips} chip(s){note}"

    def redraw(self) -> dict[str, Any] | None:
        """RandHet's register traffic per sample on the placement that fits (None: no draws)."""
        per_layer = [ly.redraw_writes_per_sample for ly in self.layers]
        if any(w is None for w in per_layer):
            return None
        writes = float(sum(w for w in per_layer if w is not None))
        return {"register_writes_per_sample": writes,
                "bits_per_sample": writes * self.decay_bits,
                "bytes_per_sample": writes * self.decay_bits / 8,
                "time_per_write": UNKNOWN,  # no public figure
                "energy_joules_per_sample": (UNKNOWN if self.write_pj is None
                                             else writes * self.write_pj * 1e-12),
                "definition": "decayU and decayV of every profile a core uses, rewritten "
                              "before each sample (and each step for per-step redraws); "
                              f"{self.decay_bits}-bit registers"}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "profile": self.profile,
            "fits": self.fits,
            "failing_layers": [{"name": ly.name, "reason": ly.reason} for ly in self.failing],
            "total_cores": self.total_cores,
            "chips": self.chips,
            "chips_by": self.chips_by if self.fits else None,
            "limits": dict(self.limits),
            "bits_per_synapse": self.bits_per_synapse,
            "profile_limited": self.profile_limited,
            "redraw": self.redraw(),
            "layers": [{**asdict(ly), "fits": ly.fits} for ly in self.layers],
            "assumptions": list(ASSUMPTIONS),
            "summary": self.summary(),
        }


def _blocks(n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, n, p)
    return starts, np.minimum(starts + p, n)


def _max_block_sum(values: np.ndarray, p: int) -> int:
    c = np.concatenate([[0], np.cumsum(values)])
    starts, ends = _blocks(len(values), p)
    return int((c[ends] - c[starts]).max())


def _footprints(ls: ConvSpec, ranges: np.ndarray) -> np.ndarray:
    """Input pixels under the kernel windows of each range of output positions (row-major
    ``lo..hi``, wrapped when ``hi < lo``), ranges [K, 2]."""
    _, ho, wo = ls.out_shape
    idx = np.arange(ho * wo)
    kernel = torch.ones((1, 1, ls.kernel, ls.kernel), dtype=torch.float64)
    out = []
    for i in range(0, len(ranges), 256):
        lo, hi = ranges[i:i + 256, :1], ranges[i:i + 256, 1:]
        inside = (idx >= lo) & (idx <= hi)
        masks = np.where(hi >= lo, inside, (idx >= lo) | (idx <= hi))
        batch = torch.as_tensor(masks.reshape(-1, 1, ho, wo), dtype=torch.float64)
        img = torch.nn.functional.conv_transpose2d(batch, kernel, stride=ls.strides,
                                                   padding=ls.paddings,
                                                   output_padding=output_padding(ls))
        out.append((img > 0.5).reshape(len(batch), -1).sum(-1).numpy())
    return np.concatenate(out)


def _conv_core_fan_in(ls: ConvSpec, p: int, order: str) -> int:
    """Distinct input axons of the busiest block of ``p`` output neurons of a conv layer whose
    neurons are numbered in ``order`` ("CHW": channel-major, "HWC": channel-minor)."""
    co, ho, wo = ls.out_shape
    hw, groups = ho * wo, ls.groups
    per_group = co // groups
    a, b = _blocks(co * hw, p)
    b = b - 1  # last neuron of each block
    inner = hw if order == "CHW" else co
    o0, o1, i0, i1 = a // inner, b // inner, a % inner, b % inner
    whole = (o1 - o0 >= 2) | ((o1 == o0 + 1) & (i1 + 1 >= i0))  # every inner index covered
    i0, i1 = np.where(whole, 0, i0), np.where(whole, inner - 1, i1)  # i1 < i0: wrapped
    (p0, p1), (c0, c1) = ((i0, i1), (o0, o1)) if order == "CHW" else ((o0, o1), (i0, i1))
    g0, g1 = c0 // per_group, c1 // per_group
    n_groups = np.where(c1 >= c0, g1 - g0 + 1, np.minimum(groups, groups - g0 + g1 + 1))
    ranges, which = np.unique(np.stack([p0, p1], 1), axis=0, return_inverse=True)
    pixels = _footprints(ls, ranges)[which.reshape(-1)]
    return int((pixels * n_groups).max()) * (ls.in_shape[0] // groups)


def pair_codes(layer: ExportedLayer, draw: DecayDraw, order: str | None) -> np.ndarray:
    """One int64 code per (du, dv) pair: [samples, steps (1 unless per-step), neurons], the
    neurons flat in the order the layer is cut (C-H-W, or H-W-C for a conv cut that way)."""
    cur, vol = draw.per_neuron(tuple(layer.shape))
    codes = cur * 8192 + vol  # [S, T', N], both under 2**13
    s, t = codes.shape[:2]
    if order == "HWC":
        codes = np.moveaxis(codes.reshape(s, t, *layer.shape), 2, -1).reshape(s, t, -1)
    elif order == "WHC":  # width-major: a compiler tile of whole columns is contiguous
        codes = codes.reshape(s, t, *layer.shape).transpose(0, 1, 4, 3, 2).reshape(s, t, -1)
    return codes


def distinct_per_core(codes: np.ndarray, p: int) -> np.ndarray:
    """Distinct codes in each block of ``p`` neurons: [S, T', cores] for codes [S, T', N]."""
    s, t, n = codes.shape
    cores = math.ceil(n / p)
    pad = cores * p - n
    if pad:  # repeat each last block's final value: it adds no distinct pair
        codes = np.concatenate([codes, np.repeat(codes[..., -1:], pad, axis=-1)], axis=-1)
    blocks = np.sort(codes.reshape(s, t, cores, p), axis=-1)
    return 1 + np.count_nonzero(np.diff(blocks, axis=-1), axis=-1)


def _largest_block(p_max: int, ok: Callable[[int], bool],
                   sizes: list[int] | None = None) -> int:
    """Largest block size in 1..p_max (or in the ascending ``sizes``, which start at 1) that
    ``ok`` accepts, by bisection (ok(1) must hold)."""
    allowed = [q for q in sizes if q <= p_max] if sizes else list(range(1, p_max + 1))
    if ok(allowed[-1]):
        return allowed[-1]
    lo, hi = 0, len(allowed) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(allowed[mid]) else (lo, mid)
    return allowed[lo]


def bound_block_sizes(neurons: int, core_size: int) -> list[int]:
    """Block sizes whose blocks stay inside one core of a profile binding: the divisors of
    ``core_size``, and the whole layer when it is a single binding core (ascending)."""
    sizes = {q for q in range(1, core_size + 1) if core_size % q == 0}
    if neurons <= core_size:
        sizes.add(neurons)
    return sorted(q for q in sizes if q <= max(neurons, 1))


def _figures(layer: ExportedLayer, bits: int, synapses: np.ndarray,
             order: str | None) -> dict[str, Callable[[int], int]]:
    """Per limit: the busiest core's figure (bytes, axons) for blocks of p neurons in ``order``
    (``synapses``: nonzero synapses per neuron, C-H-W order)."""
    ls = layer.spec
    if isinstance(ls, ConvSpec) and order == "HWC":
        synapses = synapses.reshape(ls.out_channels, -1).T.reshape(-1)
    return {
        "synaptic_memory": lambda p: math.ceil(_max_block_sum(synapses, p) * bits / 8),
        "fan_in": lambda p: (ls.in_features if isinstance(ls, DenseSpec)
                             else 0 if isinstance(ls, InputSpec)
                             else _conv_core_fan_in(ls, p, str(order))),
    }


def _count_and_cut(fit: LayerFit, codes: np.ndarray, limit: int | None, need: str,
                   sizes: list[int] | None = None) -> tuple[dict[str, Any], int]:
    """The busiest core's decay profiles for ``codes`` [S, T', N] on ``fit``'s blocks and,
    over ``limit``, the largest block (of ``sizes`` when given) that meets it: (the fields
    found, the neurons per core kept). ``need`` words the reason: "needs", "holds bound"."""
    p = int(fit.neurons_per_core or 0)
    worst = distinct_per_core(codes, p).max(axis=(0, 1))
    busiest = int(worst.argmax())
    found: dict[str, Any] = {"decay_profiles": int(worst[busiest]),
                             "decay_profiles_core": busiest, "threshold_profiles": 1}
    if limit is not None and worst[busiest] > limit:
        p = _largest_block(p, lambda q: int(distinct_per_core(codes, q).max()) <= limit, sizes)
        found["profile_cut"] = {"neurons_per_core": p, "cores": math.ceil(fit.neurons / p)}
        found["reason"] = (f"core {busiest} {need} {int(worst[busiest])} decay profiles, the "
                           f"chip has {limit}")
    return found, p


def _profiles(fit: LayerFit, layer: ExportedLayer, draw: DecayDraw, limit: int | None,
              redraws: bool) -> LayerFit:
    """``fit`` with its decay-profile count, the cut that meets ``limit`` and the redraw
    traffic (``redraws``: the draw changes between samples or steps)."""
    full = pair_codes(layer, draw, fit.order)  # [S, T', N]
    codes = np.unique(full.reshape(len(full), -1), axis=0).reshape(-1, *full.shape[1:])
    found, p = _count_and_cut(fit, codes, limit, "needs")
    if redraws:
        # every sample (not just the distinct ones): [S, cores]
        writes = REDRAW_REGISTERS * distinct_per_core(full, p).sum(axis=1)
        found["redraw_writes_per_sample"] = float(writes.sum(axis=1).mean())
        found["redraw_writes_busiest_core"] = float(writes.mean(axis=0).max())
    else:
        found["redraw_writes_per_sample"] = found["redraw_writes_busiest_core"] = 0.0
    return replace(fit, **found)


def _bound_profiles(fit: LayerFit, layer: ExportedLayer, neuron: NeuronSpec, limit: int | None,
                    redraws_per_sample: int) -> LayerFit:
    """``fit`` with a profile-grouped layer's profiles per core (the binding's, counted on the
    placement), the cut that meets ``limit`` and the host's register writes per sample
    (``redraws_per_sample``: 0, 1, or T for per-step redraws)."""
    groups = profile_groups(torch.as_tensor(layer.profile_binding), neuron.core_size,
                            neuron.profiles).numpy()[None, None, :]
    found, p = _count_and_cut(fit, groups, limit, "holds bound",
                              bound_block_sizes(fit.neurons, neuron.core_size))
    writes = REDRAW_REGISTERS * distinct_per_core(groups, p)[0, 0] * redraws_per_sample
    found["redraw_writes_per_sample"] = float(writes.sum())
    found["redraw_writes_busiest_core"] = float(writes.max())
    return replace(fit, **found)


def _fit_layer(name: str, layer: ExportedLayer, profile: HardwareProfile,
               core_size: int | None = None) -> LayerFit:
    """One layer's placement; ``core_size``: a profile binding's, which blocks must not
    straddle (blocks in (C, H, W) order)."""
    core, bits = profile.core, profile.bits.weight_bits
    n = layer.neurons
    synapses, axons = synapse_counts(layer, "post")
    cut = (None if profile.placement is None or core_size is not None
           else compiler_cut(layer, profile.placement, core.neurons_per_core))
    limits = {"synaptic_memory": core.synaptic_memory_bytes_per_core,
              "fan_in": core.max_fan_in_axons_per_core}
    known = {key: limit for key, limit in limits.items() if limit is not None}
    one_neuron = {"synaptic_memory": math.ceil(int(synapses.max()) * bits / 8),
                  "fan_in": int(axons.max())}
    too_big = [key for key, limit in known.items() if one_neuron[key] > limit]
    p_max = min(core.neurons_per_core, n)
    sizes = None if core_size is None else bound_block_sizes(n, core_size)
    orders: tuple[str | None, ...] = (None,)
    if isinstance(layer.spec, ConvSpec):
        orders = ("CHW", "HWC") if core_size is None else ("CHW",)
    figures = {order: _figures(layer, bits, synapses, order) for order in orders}

    def ok(order: str | None, keys: list[str]) -> Callable[[int], bool]:
        return lambda p: all(figures[order][k](p) <= known[k] for k in keys)

    cores_by: dict[str, int | str] = {
        "neurons": math.ceil(n / _largest_block(p_max, lambda q: True, sizes))}
    for key in limits:
        if key not in known:
            cores_by[key] = UNKNOWN
        elif key in too_big:
            cores_by[key] = CANNOT_FIT
        else:
            cores_by[key] = min(math.ceil(n / _largest_block(p_max, ok(o, [key]), sizes))
                                for o in orders)
    common = {"name": name, "neurons": n, "synapses": int(synapses.sum()),
              "synaptic_memory_bytes": math.ceil(int(synapses.sum()) * bits / 8),
              "neuron_fan_in": one_neuron["fan_in"], "cores_by": cores_by}
    if cut is not None:  # the compiler's rules replace the generic cut
        cores_by["compiler_rule"] = math.ceil(n / cut.neurons_per_core)
        return LayerFit(**common, cores=math.ceil(n / cut.neurons_per_core), order=cut.order,
                        neurons_per_core=cut.neurons_per_core, core_fan_in=None,
                        core_memory_bytes=None, compiler_rule=cut.bound_by,
                        core_memory_words=cut.core_memory_words)
    if too_big:
        what = {
            "synaptic_memory": f"one neuron's {int(synapses.max())} synapses need "
                               f"{one_neuron['synaptic_memory']} bytes, above "
                               f"synaptic_memory_bytes_per_core = {known.get('synaptic_memory')}",
            "fan_in": f"one neuron reads {one_neuron['fan_in']} input axons, above "
                      f"max_fan_in_axons_per_core = {known.get('fan_in')}",
        }
        return LayerFit(**common, cores=None, order=None, neurons_per_core=None,
                        core_fan_in=None, core_memory_bytes=None,
                        reason="; ".join(what[k] for k in too_big) + "; no split can fix that")
    best = {o: _largest_block(p_max, ok(o, list(known)), sizes) for o in orders}
    order = max(orders, key=lambda o: best[o])  # the first order on a tie
    p = best[order]
    return LayerFit(**common, cores=math.ceil(n / p), order=order, neurons_per_core=p,
                    core_fan_in=figures[order]["fan_in"](p),
                    core_memory_bytes=figures[order]["synaptic_memory"](p))


def check_fit(net: ExportedNetwork, profile: HardwareProfile,
              draws: list[DecayDraw] | None = None) -> FitReport:
    """Cores per layer, total cores and chips of ``net`` under ``profile``'s known limits; with
    the deployed ``draws``, the decay profiles each core needs and the redraw traffic."""
    c = profile.core
    limits: dict[str, int | str] = {
        "cores_per_chip": c.cores_per_chip,
        "neurons_per_core": c.neurons_per_core,
        "synaptic_memory_bytes_per_core": c.synaptic_memory_bytes_per_core or UNKNOWN,
        "max_fan_in_axons_per_core": c.max_fan_in_axons_per_core or UNKNOWN,
        "synapses_per_chip": c.synapses_per_chip or UNKNOWN,
    }
    limits["compartment_profiles_per_core"] = c.compartment_profiles_per_core or UNKNOWN
    limits["threshold_profiles_per_core"] = c.threshold_profiles_per_core or UNKNOWN
    neuron = net.spec.neuron
    bound = neuron.core_size if neuron.granularity == "profile" else None
    layers = tuple(_fit_layer(name, layer, profile, bound)
                   for name, layer in zip(layer_names(net.spec), net.layers, strict=True))
    redraws = neuron.resample != "fixed" and (neuron.randomizes_current
                                              or neuron.randomizes_voltage)
    if bound is not None:  # the binding says what each core holds, whatever the draws
        per_sample = (net.spec.encoding.timesteps if neuron.resample == "step" else 1) * redraws
        layers = tuple(
            ly if ly.cores is None else _bound_profiles(ly, layer, neuron,
                                                        c.compartment_profiles_per_core,
                                                        per_sample)
            for ly, layer in zip(layers, net.layers, strict=True))
    elif draws is not None:
        layers = tuple(
            ly if ly.cores is None else _profiles(ly, layer, d, c.compartment_profiles_per_core,
                                                  redraws)
            for ly, layer, d in zip(layers, net.layers, draws, strict=True))
    return FitReport(profile.name, limits, profile.bits.weight_bits, layers,
                     profile.bits.decay_bits, profile.energy.register_write_pj)
