"""The trainable spiking network built from a :class:`~randhet.spec.NetworkSpec`.

Inputs are [0, 1] images [B, C, H, W] (or event frames [B, C, H, W, T]); normalisation and
encoding over T steps happen inside the model, so gradients (and attacks) act on pixels.

Training modes (config ``model.mode``, BioFlexNet's three): ``snn`` (default) spiking over T
steps with SLAYER's surrogate spike gradient through time (STBP); ``hybrid`` the same spiking
forward, but the spike function's backward is the straight-through estimator dS/dV = 1 (no
surrogate shape; gradients still flow through the membrane dynamics over time); ``ann`` ReLU
units with the same layers and no time (:mod:`randhet.models.ann`, not deployable).
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from randhet.decays import DecayDraw, network_bindings, round_ste
from randhet.models.ann import AnnNetwork
from randhet.models.base import Flatten, Network, PixelEncoder
from randhet.models.flex import RandHetFlex
from randhet.models.neuron import RandHetConv, RandHetDense
from randhet.spec import (
    MODES,
    ConvSpec,
    DenseSpec,
    EncodingSpec,
    FlattenSpec,
    FlexSpec,
    Mode,
    NetworkSpec,
)


class Encoder(PixelEncoder):
    """Pixels -> input spikes [B, C, H, W, T] in SLAYER units.

    ``direct``: graded spikes ``round(x_n * 2**bits) / 2**bits`` at every step, ``x_n`` the
    normalised pixel (straight-through gradient). ``rate``: Bernoulli spikes with probability x
    (straight-through gradient). ``events``: binary frames pass through; an attack's
    perturbation of a frame value only changes the input where it flips an event (round at 0.5,
    straight-through gradient), the perturbation model for event data.
    """

    def __init__(self, spec: EncodingSpec, generator: torch.Generator | None = None) -> None:
        super().__init__(spec)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.spec.timesteps
        if self.spec.kind == "events":  # events are binary: perturbed frames round back
            return round_ste(x.clamp(0, 1))
        x = x.clamp(0, 1)
        if self.spec.kind == "direct":
            x = self.normalize(x)
            levels = float(1 << self.spec.input_bits)
            q = round_ste(x * levels) / levels
            return q.unsqueeze(-1).expand(*q.shape, t)
        probs = x.unsqueeze(-1).expand(*x.shape, t)
        u = torch.rand(probs.shape, generator=self.generator, dtype=torch.float32)
        spikes = (u.to(x.device) < probs).to(x.dtype)
        return probs + (spikes - probs).detach()

    def to_integer(self, encoded: torch.Tensor) -> torch.Tensor:
        """Integer spike payloads (same shape) that a Loihi input would send."""
        scale = float(1 << self.spec.input_shift)
        return torch.round(encoded.detach() * scale).to(torch.int64)


class SpikingNetwork(Network):
    """Encoder followed by RandHet CUBA blocks; ``seed`` seeds the decay draws and rate coding.

    ``layers`` mirrors ``spec.layers``; ``blocks`` are the spiking ones (everything but flatten),
    in order. ``mode``: ``snn`` (surrogate gradients, STBP) or ``hybrid`` (straight-through
    spike gradient); the forward pass is identical.
    """

    readouts = ("counts", "voltage", "current")

    def __init__(self, spec: NetworkSpec, seed: int = 0, mode: Mode = "snn") -> None:
        super().__init__(spec, seed)
        if mode not in ("snn", "hybrid"):
            raise ValueError(f"SpikingNetwork mode must be snn or hybrid, got {mode!r}")
        self.mode = mode
        self.encoder = Encoder(spec.encoding, self.generator)
        layers: list[torch.nn.Module] = []
        for layer in spec.layers:
            if isinstance(layer, FlattenSpec):
                layers.append(Flatten())
            elif isinstance(layer, ConvSpec):
                layers.append(RandHetConv(spec.neuron, layer, self.generator))
            elif isinstance(layer, FlexSpec):
                layers.append(RandHetFlex(spec.neuron, layer, self.generator))
            elif isinstance(layer, DenseSpec):
                layers.append(
                    RandHetDense(spec.neuron, layer.in_features, layer.out_features,
                                 self.generator)
                )
            else:
                raise ValueError(f"a {layer.kind!r} layer (stock netx only) has no torch model")
            if isinstance(layer, ConvSpec) and not (isinstance(layer.stride, int)
                                                    and isinstance(layer.padding, int)):
                raise ValueError("the torch model takes one stride and padding per conv")
        self.layers = torch.nn.ModuleList(layers)
        for block in self.blocks:
            block.neuron.straight_through = mode == "hybrid"
        shapes = [tuple(b.neuron.shape) for b in self.blocks]
        for block, binding in zip(self.blocks, network_bindings(spec.neuron, shapes, seed),
                                  strict=True):
            if binding is not None:
                block.neuron.bind(binding)

    def run_encoded(
        self, encoded: torch.Tensor, draws: list[DecayDraw] | None = None
    ) -> list[torch.Tensor]:
        """Spikes of every spiking layer ([B, *shape, T] each); optional fixed decays."""
        blocks = self.blocks
        if draws is not None and len(draws) != len(blocks):
            raise ValueError(f"{len(draws)} decay draws for {len(blocks)} spiking layers")
        out = []
        s = encoded
        k = 0
        for module in self.layers:
            if isinstance(module, Flatten):
                s = module(s)
                continue
            module.neuron.fixed_draw = None if draws is None else draws[k]
            try:
                s = module(s)
            finally:
                module.neuron.fixed_draw = None
            out.append(s)
            k += 1
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spike counts [B, classes] (the logits used for training) for pixels x."""
        return self.run_encoded(self.encoder(x))[-1].sum(dim=-1)

    def scores(self, x: torch.Tensor, readout: str = "counts") -> torch.Tensor:
        """Class scores [B, classes]: output spike ``counts``, or the output layer's
        ``voltage`` or ``current`` summed over the T steps (SLAYER units; the voltage after
        each step's reset). The continuous readouts move where the counts are flat, which
        gives margin losses a gradient (the spikes are the same draw's either way)."""
        if readout == "counts":
            return self(x)
        if readout not in self.readouts:
            raise ValueError(f"readout {readout!r} is not one of {', '.join(self.readouts)}")
        neuron = self.blocks[-1].neuron
        neuron.keep_state = True
        try:
            self(x)
            current, voltage = neuron.last_state
        finally:
            neuron.keep_state, neuron.last_state = False, None
        return (voltage if readout == "voltage" else current).sum(dim=-1)

    def mean_decays(self) -> list[dict[str, float]]:
        """Mean current/voltage decay fraction (0..1) of each spiking layer."""
        return [
            {"current": float(b.neuron.mean_current_decay.detach().mean()),
             "voltage": float(b.neuron.mean_voltage_decay.detach().mean())}
            for b in self.blocks
        ]

    def float_twin(self) -> SpikingNetwork:
        """A copy with unquantized weights and synaptic input (the "float model"): SLAYER's 8-bit
        weight hook and the integer drive grid are off; decays stay on their 12-bit grid."""
        twin = copy.deepcopy(self)
        for block in twin.blocks:
            if isinstance(block, RandHetFlex):
                block.quantize = False  # a static mask still folds
            else:
                block.synapse.pre_hook_fx = None
            block.integer_drive = False
        return twin

    def randomness_off_twin(self) -> SpikingNetwork:
        """A copy with sigma = 0: the same weights and mean decays, no random draws."""
        twin = copy.deepcopy(self)
        neuron = dataclasses.replace(self.spec.neuron, sigma=0.0)
        twin.spec = dataclasses.replace(self.spec, neuron=neuron)
        for block in twin.blocks:
            block.neuron.spec = neuron
        return twin


def build_network(spec: NetworkSpec, mode: str = "snn", seed: int = 0) -> Network:
    """The trainable model for ``spec`` in a training mode (snn | hybrid | ann)."""
    if mode == "ann":
        return AnnNetwork(spec, seed=seed)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return SpikingNetwork(spec, seed=seed, mode=mode)  # type: ignore[arg-type]
