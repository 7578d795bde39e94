"""RandHet decay draws on Loihi's 12-bit decay grid (one definition for train and deploy).

A decay ``d`` is an integer in 0..4096: the neuron keeps ``(4096 - d) / 4096`` of its state per
step. Around the mean ``d0`` (itself on the grid) a draw is::

    logit_normal:  d = round(4096 * sigmoid(logit(d0 / 4096) + sigma * eps))
    gaussian:      d = round(4096 * clip(d0 / 4096 + sigma * eps, 0, 1))

with ``eps ~ N(0, 1)`` per neuron (or per channel, or per decay profile) and per sample,
drawn once per forward pass, once per time step, or once for good (``resample``), then
clamped to the range the decay register holds (``NeuronSpec.current_decay_range`` /
``voltage_decay_range``: Loihi 1's 1..4096 and 0..4095 by default). Training, the emulator and
Lava all take their decays from here, so the clamp is the same everywhere. The median of the
logit-normal is ``d0``; ``sigma = 0`` gives ``d0`` exactly. Noise is drawn on the CPU from a
seeded generator (float32 normals, widened to float64); the mapping is differentiable in the
mean (straight-through rounding), so mean decays can learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from randhet import kernel
from randhet.network import ExportedNetwork
from randhet.spec import DECAY_SCALE, NeuronSpec

_EDGE = 0.5 / DECAY_SCALE  # keeps logit() finite for d0 = 0 or 4096


class _StraightThrough(torch.autograd.Function):
    """``op(x)`` forward, the identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op):  # type: ignore[no-untyped-def, override]
        return op(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def, override]
        return grad, None


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer with a straight-through gradient."""
    return _StraightThrough.apply(x, torch.round)


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """Round down to an integer with a straight-through gradient."""
    return _StraightThrough.apply(x, torch.floor)


def mean_decay_int(fraction: float) -> int:
    """Integer decay (0..4096) of a decay fraction, rounded as SLAYER quantizes it."""
    return int(torch.round(torch.tensor(fraction * DECAY_SCALE, dtype=torch.float32)).item())


def decays_from_eps(
    mean: torch.Tensor, sigma: float, eps: torch.Tensor, distribution: str = "logit_normal",
    bounds: tuple[int, int] = (0, DECAY_SCALE),
) -> torch.Tensor:
    """Integer-valued decays (float64, within ``bounds``) for noise ``eps`` around the mean
    fraction.

    ``mean`` is a fraction (any shape broadcastable with ``eps``); gradients reach it.
    """
    if distribution == "logit_normal" and sigma != 0 and not (
            torch.is_grad_enabled() and mean.requires_grad):
        return _logit_normal_no_grad(mean, sigma, eps, bounds)
    d0 = round_ste(mean.to(torch.float64) * DECAY_SCALE).clamp(0, DECAY_SCALE)
    eps = eps.to(device=d0.device, dtype=torch.float64)
    if sigma == 0:
        return d0.clamp(*bounds) + torch.zeros_like(eps)
    if distribution == "logit_normal":
        p = (d0 / DECAY_SCALE).clamp(_EDGE, 1 - _EDGE)
        frac = torch.sigmoid(torch.logit(p) + sigma * eps)
    elif distribution == "gaussian":
        frac = (d0 / DECAY_SCALE + sigma * eps).clamp(0, 1)
    else:
        raise ValueError(f"unknown decay distribution {distribution!r}")
    return round_ste(frac * DECAY_SCALE).clamp(*bounds)


_MEAN_LOGITS: dict[tuple[float, torch.dtype, tuple[int, ...]], tuple[torch.Tensor, float]] = {}
_MEAN_LOGITS_KEPT = 256


def _mean_logit(mean: torch.Tensor) -> torch.Tensor:
    """``logit(d0 / 4096)`` of the mean fraction on the 12-bit grid (float64, ``mean``'s
    shape), by :func:`decays_from_eps`'s ops. A one-element mean on the CPU (a layer's mean)
    is kept per value, so the draws of every pass skip its six small ops."""
    return _mean_logits(mean)[0]


def _mean_logits(mean: torch.Tensor) -> tuple[torch.Tensor, float]:
    """:func:`_mean_logit`, and its value as a Python float where it has one element (else
    NaN)."""
    key = None
    if mean.numel() == 1 and mean.device.type == "cpu":
        key = (float(mean.item()), mean.dtype, tuple(mean.shape))
        kept = _MEAN_LOGITS.get(key)
        if kept is not None:
            return kept
    d0 = torch.round(mean.to(torch.float64) * DECAY_SCALE).clamp_(0, DECAY_SCALE)
    logit = torch.logit((d0 / DECAY_SCALE).clamp_(_EDGE, 1 - _EDGE))
    out = (logit, float(logit.item()) if logit.numel() == 1 else float("nan"))
    if key is not None:
        if len(_MEAN_LOGITS) >= _MEAN_LOGITS_KEPT:
            _MEAN_LOGITS.clear()
        _MEAN_LOGITS[key] = out
    return out


@torch.no_grad()
def _logit_normal_no_grad(mean: torch.Tensor, sigma: float, eps: torch.Tensor,
                          bounds: tuple[int, int]) -> torch.Tensor:
    """:func:`decays_from_eps`'s logit-normal decays where no gradient is wanted: the same
    ops in the same order (the same bits), in place on one buffer."""
    logit = _mean_logit(mean)
    d = eps.to(device=logit.device, dtype=torch.float64) * sigma
    return d.add_(logit).sigmoid_().mul_(DECAY_SCALE).round_().clamp_(*bounds)


def profile_binding(neurons: int, core_size: int, profiles: int,
                    generator: torch.Generator) -> torch.Tensor:
    """The profile (0..K-1) of every neuron of a layer, [neurons] int64, neurons flat in
    (C, H, W) order. Neurons ``c * core_size ... (c + 1) * core_size - 1`` form core ``c``; in
    each core the labels ``0, 1, ..., K-1, 0, 1, ...`` are shuffled over its neurons, so the
    profiles of a core hold equally many neurons (to within one). A core of at most K neurons
    gives every neuron a profile of its own."""
    cores = []
    for start in range(0, neurons, core_size):
        n = min(core_size, neurons - start)
        labels = torch.arange(n, dtype=torch.int64) % profiles
        cores.append(labels[torch.randperm(n, generator=generator)])
    return torch.cat(cores)


def network_bindings(neuron: NeuronSpec, layer_shapes: list[tuple[int, ...]],
                     seed: int) -> list[torch.Tensor | None]:
    """Every layer's :func:`profile_binding` from ``seed`` (None per layer unless the
    granularity is ``profile``); a generator of its own, so the decay draws do not shift."""
    if neuron.granularity != "profile":
        return [None] * len(layer_shapes)
    gen = torch.Generator().manual_seed(seed)
    return [profile_binding(int(torch.Size(shape).numel()), neuron.core_size, neuron.profiles,
                            gen) for shape in layer_shapes]


def profile_groups(binding: torch.Tensor, core_size: int, profiles: int) -> torch.Tensor:
    """Group index ``core * K + profile`` of every neuron (its core's profile), [neurons]."""
    core = torch.arange(binding.numel(), dtype=torch.int64) // core_size
    return core * profiles + binding.reshape(-1).to(torch.int64)


def representatives(binding: torch.Tensor, core_size: int, profiles: int) -> torch.Tensor:
    """For every neuron, the flat index of the first neuron of its core bound to the same
    profile: the neuron whose noise its profile's draw is, [neurons] int64."""
    group = profile_groups(binding, core_size, profiles)
    n = group.numel()
    first = torch.full((int(group.max()) + 1,), n, dtype=torch.int64)
    first = first.scatter_reduce(0, group, torch.arange(n, dtype=torch.int64), "amin")
    return first[group]


def share_by_profile(eps: torch.Tensor, shape: tuple[int, ...],
                     rep: torch.Tensor) -> torch.Tensor:
    """Per-neuron noise [B, *shape(, T)] -> every neuron takes its profile's representative's
    noise (:func:`representatives`): one draw per profile, shared by its neurons."""
    lead = eps.shape[0]
    n = int(torch.Size(shape).numel())
    flat = eps.reshape(lead, n, -1)
    return flat.index_select(1, rep.to(flat.device)).reshape(eps.shape)


def noise_shape(neuron: NeuronSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one sample's noise: the neuron shape, or (C, 1, ...) per channel."""
    if neuron.granularity == "channel":
        return (shape[0],) + (1,) * (len(shape) - 1)
    return tuple(shape)


@dataclass(frozen=True)
class DecayDraw:
    """Integer decays of one layer: ``current``/``voltage`` [B, *noise_shape] (one per sample)
    or [B, *noise_shape, T] (one per sample and step), float64 integer values."""

    current: torch.Tensor
    voltage: torch.Tensor

    def to(self, device: torch.device | str) -> DecayDraw:
        return DecayDraw(self.current.to(device), self.voltage.to(device))

    def per_neuron(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``current``, ``voltage`` given to every neuron of a layer of ``shape``: int64
        [B, T', neurons] (T' = steps when drawn per step, else 1), neurons flat (C, H, W)."""
        return _per_neuron(self.current, shape), _per_neuron(self.voltage, shape)


def _per_neuron(values: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    a = values.detach().cpu().numpy().astype(np.int64)
    if a.ndim == len(shape) + 1:  # one value per sample: T' = 1
        a = a[..., None]
    a = np.broadcast_to(a, (a.shape[0], *shape, a.shape[-1]))
    return np.moveaxis(a, -1, 1).reshape(a.shape[0], a.shape[-1], -1)


def _two_normals(size: tuple[int, ...], generator: torch.Generator | None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two tensors of float32 standard normals widened to float64, drawn one after the other.
    Where a tensor holds a multiple of 16 values (torch fills normals in blocks of 16), both
    come from one draw of twice the size: the same numbers and the same generator state
    after (tests/test_neuron.py holds this), one call less."""
    n = int(torch.Size(size).numel())
    if n % 16:
        return tuple(torch.randn(size, generator=generator, dtype=torch.float32)
                     .to(torch.float64) for _ in range(2))  # type: ignore[return-value]
    both = torch.randn((2, *size), generator=generator, dtype=torch.float32).to(torch.float64)
    return both[0], both[1]


def draw_eps(
    neuron: NeuronSpec,
    batch: int,
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator | None,
    binding: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Fresh standard-normal noise for the randomized decays (None where not randomized).

    Profile granularity draws per neuron, as ``neuron`` granularity does, and every neuron
    then takes the noise of its profile's first neuron (``binding``: the layer's
    :func:`profile_binding`), so K = neurons per core repeats the per-neuron draws bit for bit.
    """
    size = (batch, *noise_shape(neuron, shape))
    if neuron.resample == "step":
        size = (*size, steps)
    # float32 normals (torch draws them vectorized, ~5x faster than float64 ones), widened:
    # their 2**-24 resolution is far below the 12-bit decay grid they are mapped onto
    cur, vol = _two_normals(size, generator)
    if neuron.granularity == "profile":
        if binding is None:
            raise ValueError("profile granularity needs the layer's profile binding")
        rep = representatives(binding, neuron.core_size, neuron.profiles)
        cur, vol = share_by_profile(cur, shape, rep), share_by_profile(vol, shape, rep)
    return (
        cur if neuron.randomizes_current else None,
        vol if neuron.randomizes_voltage else None,
    )


def decays_for(
    neuron: NeuronSpec,
    mean_current: torch.Tensor,
    mean_voltage: torch.Tensor,
    eps_current: torch.Tensor | None,
    eps_voltage: torch.Tensor | None,
) -> DecayDraw:
    """The draw for given noise (None: the mean decay, shape [1]), within the register
    ranges of ``neuron``."""
    def one(mean: torch.Tensor, eps: torch.Tensor | None, bounds: tuple[int, int]
            ) -> torch.Tensor:
        if eps is None:
            return round_ste(mean.to(torch.float64) * DECAY_SCALE).clamp(*bounds)
        return decays_from_eps(mean, neuron.sigma, eps, neuron.distribution, bounds)

    return DecayDraw(one(mean_current, eps_current, neuron.current_decay_range),
                     one(mean_voltage, eps_voltage, neuron.voltage_decay_range))


def fresh_draw(
    neuron: NeuronSpec,
    mean_current: torch.Tensor,
    mean_voltage: torch.Tensor,
    batch: int,
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator | None,
    binding: torch.Tensor | None = None,
) -> DecayDraw:
    """Fresh decays for a batch of ``shape`` neurons: :func:`draw_eps`, then
    :func:`decays_for`. The common draw (logit-normal, both decays, per neuron or channel, no
    gradient wanted for the means, on the CPU) runs as one call of the kernel extension where
    it is built (``randhet/csrc/draws.cpp``: the same ops in the same order, the same
    numbers), not twenty Python ones."""
    ext = _draw_extension(neuron, mean_current, mean_voltage, generator)
    if ext is None:
        eps_c, eps_v = draw_eps(neuron, batch, shape, steps, generator, binding)
        return decays_for(neuron, mean_current, mean_voltage, eps_c, eps_v)
    size = (batch, *noise_shape(neuron, shape), *((steps,) if neuron.resample == "step" else ()))
    current, voltage = ext.logit_normal_draw(  # type: ignore[attr-defined]
        size, generator, _mean_logits(mean_current)[1], _mean_logits(mean_voltage)[1],
        neuron.sigma, *neuron.current_decay_range, *neuron.voltage_decay_range)
    return DecayDraw(current, voltage)


def _draw_extension(neuron: NeuronSpec, mean_current: torch.Tensor, mean_voltage: torch.Tensor,
                    generator: torch.Generator | None) -> object | None:
    """The kernel extension where :func:`fresh_draw` can run as one call of it (its
    :func:`randhet.kernel.backend`), else None."""
    if (neuron.granularity == "profile" or neuron.distribution != "logit_normal"
            or not (neuron.randomizes_current and neuron.randomizes_voltage)
            or (torch.is_grad_enabled()
                and (mean_current.requires_grad or mean_voltage.requires_grad))
            or mean_voltage.device != mean_current.device
            or mean_current.numel() != 1 or mean_voltage.numel() != 1
            or (generator is not None and generator.device != mean_current.device)):
        return None
    return kernel.backend("draw", mean_current.device, mean_current.dtype).impl


def draw_layer(
    neuron: NeuronSpec,
    batch: int,
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    steps: int = 1,
    means: tuple[int, int] | None = None,
    binding: torch.Tensor | None = None,
) -> DecayDraw:
    """Fresh decays for one layer, expanded to the batch, around ``means`` (integer current
    and voltage decays; default: the spec's configured means); ``binding`` for profile
    granularity."""
    if means is None:
        means = (mean_decay_int(neuron.current_decay), mean_decay_int(neuron.voltage_decay))
    mc = torch.tensor([means[0] / DECAY_SCALE], dtype=torch.float64)
    mv = torch.tensor([means[1] / DECAY_SCALE], dtype=torch.float64)
    draw = fresh_draw(neuron, mc, mv, batch, shape, steps, generator, binding)
    size = (batch, *noise_shape(neuron, shape)) + ((steps,) if neuron.resample == "step" else ())
    return DecayDraw(draw.current.expand(size).clone(), draw.voltage.expand(size).clone())


def draw_network(
    neuron: NeuronSpec,
    batch: int,
    layer_shapes: list[tuple[int, ...]],
    seed: int,
    steps: int = 1,
    means: list[tuple[int, int]] | None = None,
    bindings: list[torch.Tensor | None] | None = None,
) -> list[DecayDraw]:
    """Decays for every layer and ``batch`` samples from ``seed`` (``means``: per layer integer
    mean decays, default the spec's; ``bindings``: per layer profile binding)."""
    gen = torch.Generator().manual_seed(seed)
    per_layer = means or [None] * len(layer_shapes)
    binds = bindings or [None] * len(layer_shapes)
    return [
        draw_layer(neuron, batch, shape, gen, steps, m, b)
        for shape, m, b in zip(layer_shapes, per_layer, binds, strict=True)
    ]


def deployment_draws(net: ExportedNetwork, samples: int, seed: int) -> list[DecayDraw]:
    """Per-layer integer decays for ``samples`` samples, as the deployed network draws them.

    ``forward``: one draw per sample; ``step``: one per sample and step; ``fixed``: the frozen
    draw stored in the file, the same for every sample. Layout [S, *noise_shape(, T)].
    """
    neuron = net.spec.neuron
    if neuron.resample == "fixed":
        out = []
        for layer in net.layers:
            cur = torch.as_tensor(layer.fixed_current, dtype=torch.float64)
            vol = torch.as_tensor(layer.fixed_voltage, dtype=torch.float64)
            out.append(DecayDraw(cur.expand(samples, *cur.shape).clone(),
                                 vol.expand(samples, *vol.shape).clone()))
        return out
    steps = net.spec.encoding.timesteps
    means = [(layer.current_decay, layer.voltage_decay) for layer in net.layers]
    shapes = [layer.shape for layer in net.layers]
    bindings = [None if layer.profile_binding is None
                else torch.as_tensor(layer.profile_binding, dtype=torch.int64)
                for layer in net.layers]
    return draw_network(neuron, samples, shapes, seed, steps, means, bindings)
