"""RandHet decay draws on Loihi's 12-bit decay grid (one definition for train and deploy).

A decay ``d`` is an integer in 0..4096: the neuron keeps ``(4096 - d) / 4096`` of its state per
step. RandHet draws it per neuron from a logit-normal around the mean decay ``d0``::

    d = round(4096 * sigmoid(logit(d0 / 4096) + sigma * eps)),   eps ~ N(0, 1)

(the reference code's ``s = sigmoid(sigma * eps)`` recentred on the configured mean). The
median of ``d`` is ``d0``; ``sigma = 0`` returns ``d0`` exactly (the stock CUBA neuron).
Computed in float64 on the CPU so that every machine and stage gets the same integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from randhet.spec import DECAY_SCALE, NeuronSpec

_EDGE = 0.5 / DECAY_SCALE  # keeps logit() finite for d0 = 0 or 4096


def mean_decay_int(fraction: float) -> int:
    """Integer decay (0..4096) of a decay fraction, rounded as SLAYER quantizes it."""
    return int(torch.round(torch.tensor(fraction * DECAY_SCALE, dtype=torch.float32)).item())


def logit_normal_decay(mean_int: int, sigma: float, eps: torch.Tensor) -> torch.Tensor:
    """Map standard-normal ``eps`` to integer decays (float64 tensor of integers, 0..4096)."""
    if sigma == 0:
        return torch.full_like(eps, float(mean_int), dtype=torch.float64)
    p = min(max(mean_int / DECAY_SCALE, _EDGE), 1 - _EDGE)
    z = torch.logit(torch.tensor(p, dtype=torch.float64)) + sigma * eps.to(torch.float64)
    return torch.round(DECAY_SCALE * torch.sigmoid(z)).clamp_(0, DECAY_SCALE)


@dataclass(frozen=True)
class DecayDraw:
    """Integer decays of one layer for a batch of samples: ``current``/``voltage`` [B, *shape]."""

    current: torch.Tensor
    voltage: torch.Tensor

    def to(self, device: torch.device | str) -> DecayDraw:
        return DecayDraw(self.current.to(device), self.voltage.to(device))


def draw_layer(
    neuron: NeuronSpec,
    batch: int,
    shape: tuple[int, ...],
    generator: torch.Generator | None,
) -> DecayDraw:
    """Fresh per-neuron, per-sample decays for one layer (float64, CPU)."""
    size = (batch, *shape)
    du0 = mean_decay_int(neuron.current_decay)
    dv0 = mean_decay_int(neuron.voltage_decay)
    if neuron.randomizes_current:
        eps = torch.randn(size, generator=generator, dtype=torch.float64)
        du = logit_normal_decay(du0, neuron.sigma, eps)
    else:
        du = torch.full(size, float(du0), dtype=torch.float64)
    if neuron.randomizes_voltage:
        eps = torch.randn(size, generator=generator, dtype=torch.float64)
        dv = logit_normal_decay(dv0, neuron.sigma, eps)
    else:
        dv = torch.full(size, float(dv0), dtype=torch.float64)
    return DecayDraw(du, dv)


def draw_network(
    neuron: NeuronSpec,
    batch: int,
    layer_shapes: list[tuple[int, ...]],
    seed: int,
) -> list[DecayDraw]:
    """Decays for every layer of a network and ``batch`` samples, reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return [draw_layer(neuron, batch, shape, gen) for shape in layer_shapes]
