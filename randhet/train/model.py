"""The trainable spiking network built from a :class:`~randhet.spec.NetworkSpec`.

Inputs are images in [0, 1]; encoding over T steps happens inside the model, so gradients
(and, later, attacks) act on pixels.
"""

from __future__ import annotations

import torch

from randhet.decays import DecayDraw
from randhet.spec import EncodingSpec, NetworkSpec
from randhet.train.neuron import RandHetDense


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


class Encoder(torch.nn.Module):
    """[B, *input_shape] pixels in [0, 1] -> [B, features, T] input spikes (SLAYER units).

    ``direct``: graded spikes ``round(x * 2**bits) / 2**bits`` at every step (straight-through
    gradient). ``rate``: Bernoulli spikes with probability x (straight-through gradient).
    """

    def __init__(self, spec: EncodingSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).clamp(0, 1)
        t = self.spec.timesteps
        if self.spec.kind == "direct":
            levels = float(1 << self.spec.input_bits)
            q = _RoundSTE.apply(x * levels) / levels
            return q.unsqueeze(-1).expand(*q.shape, t)
        probs = x.unsqueeze(-1).expand(*x.shape, t)
        u = torch.rand(probs.shape, generator=self.generator, dtype=torch.float32)
        spikes = (u.to(x.device) < probs).to(x.dtype)
        return probs + (spikes - probs).detach()

    def to_integer(self, encoded: torch.Tensor) -> torch.Tensor:
        """Integer spike payloads [B, features, T] that a Loihi input would send."""
        scale = float(1 << self.spec.input_shift)
        return torch.round(encoded.detach() * scale).to(torch.int64)


class SpikingNetwork(torch.nn.Module):
    """Encoder followed by RandHet dense CUBA blocks; ``seed`` seeds encoder and decay draws."""

    def __init__(self, spec: NetworkSpec, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.generator = torch.Generator().manual_seed(seed)
        self.encoder = Encoder(spec.encoding, self.generator)
        self.blocks = torch.nn.ModuleList(
            RandHetDense(spec.neuron, layer.in_features, layer.out_features, self.generator)
            for layer in spec.layers
        )

    def run_encoded(
        self, encoded: torch.Tensor, draws: list[DecayDraw] | None = None
    ) -> list[torch.Tensor]:
        """Spikes of every layer ([B, n, T] each) for encoded input; optional fixed decays."""
        if draws is not None and len(draws) != len(self.blocks):
            raise ValueError(f"{len(draws)} decay draws for {len(self.blocks)} layers")
        out = []
        s = encoded
        for i, block in enumerate(self.blocks):
            block.neuron.fixed_draw = None if draws is None else draws[i]
            try:
                s = block(s)
            finally:
                block.neuron.fixed_draw = None
            out.append(s)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spike counts [B, classes] (the logits used for training) for pixels x."""
        return self.run_encoded(self.encoder(x))[-1].sum(dim=-1)

    def layer_shapes(self) -> list[tuple[int, ...]]:
        return [(layer.out_features,) for layer in self.spec.layers]
