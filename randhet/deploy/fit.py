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
  ``"unknown"`` and not checked; ``max_fan_out_per_core`` (routing) is not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from randhet.deploy.synapses import output_padding, synapse_counts
from randhet.hardware import HardwareProfile
from randhet.layer_tokens import layer_names
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import ConvSpec, DenseSpec

UNKNOWN = "unknown"
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
)


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

    def summary(self) -> str:
        """One line: where it fits, or which layers do not and why."""
        if not self.fits:
            why = "; ".join(f"{ly.name}: {ly.reason}" for ly in self.failing)
            return f"does not fit {self.profile}: {why}"
        unknown = [k for k, v in self.limits.items() if v == UNKNOWN]
        note = f" ({', '.join(unknown)} unknown to the profile, not checked)" if unknown else ""
        return f"fits {self.profile} on {self.total_cores} cores, {self.chips} chip(s){note}"

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
        img = torch.nn.functional.conv_transpose2d(batch, kernel, stride=ls.stride,
                                                   padding=ls.padding,
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


def _largest_block(p_max: int, ok: Callable[[int], bool]) -> int:
    """Largest block size in 1..p_max that ``ok`` accepts, by bisection (ok(1) must hold)."""
    if ok(p_max):
        return p_max
    lo, hi = 1, p_max
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


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
                             else _conv_core_fan_in(ls, p, str(order))),
    }


def _fit_layer(name: str, layer: ExportedLayer, profile: HardwareProfile) -> LayerFit:
    core, bits = profile.core, profile.bits.weight_bits
    n = layer.neurons
    synapses, axons = synapse_counts(layer, "post")
    limits = {"synaptic_memory": core.synaptic_memory_bytes_per_core,
              "fan_in": core.max_fan_in_axons_per_core}
    known = {key: limit for key, limit in limits.items() if limit is not None}
    one_neuron = {"synaptic_memory": math.ceil(int(synapses.max()) * bits / 8),
                  "fan_in": int(axons.max())}
    too_big = [key for key, limit in known.items() if one_neuron[key] > limit]
    p_max = min(core.neurons_per_core, n)
    orders = ("CHW", "HWC") if isinstance(layer.spec, ConvSpec) else (None,)
    figures = {order: _figures(layer, bits, synapses, order) for order in orders}

    def ok(order: str | None, keys: list[str]) -> Callable[[int], bool]:
        return lambda p: all(figures[order][k](p) <= known[k] for k in keys)

    cores_by: dict[str, int | str] = {"neurons": math.ceil(n / core.neurons_per_core)}
    for key in limits:
        if key not in known:
            cores_by[key] = UNKNOWN
        elif key in too_big:
            cores_by[key] = CANNOT_FIT
        else:
            cores_by[key] = min(math.ceil(n / _largest_block(p_max, ok(o, [key])))
                                for o in orders)
    common = {"name": name, "neurons": n, "synapses": int(synapses.sum()),
              "synaptic_memory_bytes": math.ceil(int(synapses.sum()) * bits / 8),
              "neuron_fan_in": one_neuron["fan_in"], "cores_by": cores_by}
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
    best = {o: _largest_block(p_max, ok(o, list(known))) for o in orders}
    order = max(orders, key=lambda o: best[o])  # the first order on a tie
    p = best[order]
    return LayerFit(**common, cores=math.ceil(n / p), order=order, neurons_per_core=p,
                    core_fan_in=figures[order]["fan_in"](p),
                    core_memory_bytes=figures[order]["synaptic_memory"](p))


def check_fit(net: ExportedNetwork, profile: HardwareProfile) -> FitReport:
    """Cores per layer, total cores and chips of ``net`` under ``profile``'s known limits."""
    c = profile.core
    limits: dict[str, int | str] = {
        "cores_per_chip": c.cores_per_chip,
        "neurons_per_core": c.neurons_per_core,
        "synaptic_memory_bytes_per_core": c.synaptic_memory_bytes_per_core or UNKNOWN,
        "max_fan_in_axons_per_core": c.max_fan_in_axons_per_core or UNKNOWN,
        "synapses_per_chip": c.synapses_per_chip or UNKNOWN,
    }
    layers = tuple(_fit_layer(name, layer, profile)
                   for name, layer in zip(layer_names(net.spec), net.layers, strict=True))
    return FitReport(profile.name, limits, profile.bits.weight_bits, layers)
