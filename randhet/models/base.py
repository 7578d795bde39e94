"""What every trainable model offers the trainer, the attacks and the analysis."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from randhet.spec import EncodingSpec, NetworkSpec

EVAL_BATCH = 256  # samples per batch when a torch model is evaluated without gradients

Predict = Callable[[torch.Tensor, int], np.ndarray]
"""A predictor of a randomized network: ``(x, draw seed) -> predicted labels [B]``; the seed
fixes all of that draw's randomness (decays, rate coding)."""


class PixelEncoder(torch.nn.Module):
    """The start of every model: [0, 1] pixels, clamped, with the spec's per-channel
    normalisation ``(x - mean) / std`` (direct encoding of images only)."""

    def __init__(self, spec: EncodingSpec) -> None:
        super().__init__()
        self.spec = spec
        mean = torch.tensor(spec.mean or (0.0,), dtype=torch.float32)
        std = torch.tensor(spec.std or (1.0,), dtype=torch.float32)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.reshape(1, -1, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, C, H, W] (other inputs unchanged)."""
        if self.spec.kind == "direct" and x.dim() == 4:
            return (x - self.mean) / self.std
        return x


class Flatten(torch.nn.Module):
    """(C, H, W) -> C*H*W features in torch's (C, H, W) order: [B, C, H, W, T] -> [B, C*H*W, T]
    for a spiking model (``time_axis``), [B, C, H, W] -> [B, C*H*W] for an ANN."""

    def __init__(self, time_axis: bool = True) -> None:
        super().__init__()
        self.time_axis = time_axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_axis:
            return x.reshape(x.shape[0], -1, x.shape[-1])
        return x.reshape(x.shape[0], -1)


class Network(torch.nn.Module):
    """A model of a :class:`~randhet.spec.NetworkSpec` (spiking or ANN).

    ``spec``: the description it was built from; ``generator``: the CPU generator of all its
    randomness (decay draws, rate coding, Flex noise), seeded with ``seed``; ``layers`` mirrors
    ``spec.layers`` and ``blocks`` are the layers with units (everything but flatten).
    ``forward(x)`` maps [0, 1] pixels to logits [B, classes]; ``run_encoded(encoded)`` gives
    every unit layer's output [B, *shape, T] (T = 1 for an ANN).
    """

    mode: str
    readouts: tuple[str, ...] = ("counts",)  # what :meth:`scores` can read out

    def __init__(self, spec: NetworkSpec, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.generator = torch.Generator().manual_seed(seed)
        self.encoder: torch.nn.Module
        self.layers: torch.nn.ModuleList

    @property
    def blocks(self) -> list[torch.nn.Module]:
        return [m for m in self.layers if not isinstance(m, Flatten)]

    def run_encoded(self, encoded: torch.Tensor, draws: object = None) -> list[torch.Tensor]:
        raise NotImplementedError

    def scores(self, x: torch.Tensor, readout: str = "counts") -> torch.Tensor:
        """Class scores [B, classes] for pixels x: ``counts`` (the forward's output), or a
        continuous readout of the output layer where :attr:`readouts` has one."""
        if readout != "counts":
            raise ValueError(f"readout {readout!r} is not one of {', '.join(self.readouts)}")
        return self(x)

    def decay_parameters(self) -> list[torch.nn.Parameter]:
        """The learnable mean decays (empty unless ``neuron.learn_decay``; an ANN has none)."""
        return [p for name, p in self.named_parameters()
                if name.endswith("_decay") and p.requires_grad]

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter that is not a mean decay."""
        decays = {id(p) for p in self.decay_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in decays]

    def mean_decays(self) -> list[dict[str, float]]:
        """Mean current/voltage decay fraction (0..1) of each spiking layer (ANN: none)."""
        return []

    def float_twin(self) -> Network:
        """The unquantized copy ("float model") the protocol scores as a target."""
        raise NotImplementedError

    def randomness_off_twin(self) -> Network:
        """A copy with the same weights and no random draws (sigma = 0)."""
        raise NotImplementedError

    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Unit shapes of the layers with units."""
        return [tuple(layer.out_shape) for layer in self.spec.spiking_layers]
