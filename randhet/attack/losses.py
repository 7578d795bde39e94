"""The losses an attack ascends, on class scores [B, classes] (spike counts or a continuous
readout, :meth:`randhet.models.base.Network.scores`), one value per sample.

- ``ce``: cross-entropy;
- ``dlr``: Croce and Hein's difference of logits ratio, ``-(z_y - max_{i != y} z_i) /
  (z_pi1 - z_pi3)``, invariant to the scores' scale (so a voltage readout and spike counts
  are on one footing). Spike counts are integers and tie often: their denominator is at least
  one spike (AutoAttack's 1e-12 would turn a three-way tie into a 1e12 gradient that swamps
  the other EOT draws); a continuous readout keeps 1e-12.

:func:`margin` (``z_y - max_{i != y} z_i``, negative = misclassified) is what the
gradient-free attack lowers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES: tuple[str, ...] = ("ce", "dlr")


def margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{i != y} z_i`` per sample [B] (<= 0: the label is not the unique top)."""
    zy = z.gather(1, y[:, None])[:, 0]
    others = z.scatter(1, y[:, None], float("-inf"))
    return zy - others.max(1).values


def dlr(z: torch.Tensor, y: torch.Tensor, floor: float) -> torch.Tensor:
    """Difference of logits ratio per sample [B]; ``floor`` bounds the denominator below."""
    if z.shape[1] < 3:
        raise ValueError("the DLR loss needs at least 3 classes")
    top = z.topk(3, dim=1).values
    return -margin(z, y) / (top[:, 0] - top[:, 2]).clamp_min(floor)


def loss_fn(name: str, z: torch.Tensor, y: torch.Tensor, counts: bool) -> torch.Tensor:
    """Loss ``name`` (:data:`LOSSES`) per sample [B]; ``counts``: z are spike counts."""
    if name == "ce":
        return F.cross_entropy(z, y, reduction="none")
    if name == "dlr":
        return dlr(z, y, 1.0 if counts else 1e-12)
    raise ValueError(f"unknown loss {name!r} (available: {', '.join(LOSSES)})")
