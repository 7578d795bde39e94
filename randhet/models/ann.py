"""The ANN baseline (``model.mode = "ann"``): the spec's layers with ReLU units and no time.

Same layer structure as :class:`~randhet.models.spiking.SpikingNetwork` (conv, pool as a fixed
depthwise sum-pooling conv, Flex, flatten, dense; no biases), but every layer is one 2-D
operation followed by ReLU (the output dense gives the logits), in a single forward pass. Inputs
are [0, 1] pixels [B, C, H, W], normalised inside the model as for the SNN (no input
quantisation); event frames [B, C, H, W, T] are averaged over T. Activations carry a trailing
time axis of length 1 so the trainer's evaluation (``run_encoded(...)[-1].sum(-1)``) applies
unchanged; its "spike rate" is then the mean ReLU activation. Not deployable: exporting refuses.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from randhet.errors import NetworkFileError
from randhet.models.base import Flatten, Network, PixelEncoder
from randhet.models.flex import FlexPaths, add_mask_parameters, pool_source_channels
from randhet.spec import ConvSpec, DenseSpec, FlattenSpec, FlexSpec, NetworkSpec

NOT_DEPLOYABLE = ("an ann-mode run (ReLU units, no time) is not deployable on Loihi; "
                  "train it with model.mode = snn or hybrid")


class AnnEncoder(PixelEncoder):
    """[0, 1] pixels -> normalised inputs [B, C, H, W] (events: mean over the T frames)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0, 1)
        if self.spec.kind == "events":
            return x.mean(-1)
        return self.normalize(x)


class _NotDeployable:
    """Mixin: netx export of an ANN layer is refused with one line."""

    def export_hdf5(self, *args: object, **kwargs: object) -> None:
        raise NetworkFileError(NOT_DEPLOYABLE)


class AnnConv(_NotDeployable, torch.nn.Conv2d):
    """A conv (or fixed sum-pooling) layer of a ConvSpec, without bias."""

    def __init__(self, spec: ConvSpec) -> None:
        super().__init__(spec.in_shape[0], spec.out_channels, spec.kernel, spec.stride,
                         spec.padding, groups=spec.groups, bias=False)
        self.spec = spec
        if spec.pool:
            with torch.no_grad():
                self.weight.fill_(spec.pool_weight)
            self.weight.requires_grad_(False)


class AnnDense(_NotDeployable, torch.nn.Linear):
    """A dense layer of a DenseSpec, without bias."""

    def __init__(self, spec: DenseSpec) -> None:
        super().__init__(spec.in_features, spec.out_features, bias=False)
        self.spec = spec


class AnnFlex(FlexPaths, _NotDeployable, torch.nn.Module):
    """``m * Conv(x) + (1 - m) * Pool(x)`` in 2-D, with the FlexSpec's mask, pool and gate.

    Same semantics as :class:`~randhet.models.flex.RandHetFlex` without time (the shared parts
    are :class:`~randhet.models.flex.FlexPaths`): static mask ``gate(logit)`` per channel, or
    dynamic ``gate(BatchNorm(P - theta))`` per sample, channel and position, or ``pos``: a
    learned logit per (channel, h, w); ``eta`` adds N(0, eta**2) noise per sample and channel to
    the logits while training; ``plastic`` > 0: the same plasticity rule.
    """

    def __init__(self, spec: FlexSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.generator = generator
        c_in, c = spec.in_shape[0], spec.out_channels
        self.conv = torch.nn.Conv2d(c_in, c, spec.kernel, 1, spec.padding, bias=False)
        self.register_buffer("pool_source", pool_source_channels(c_in, c), persistent=False)
        add_mask_parameters(self, spec, torch.nn.BatchNorm2d)
        self.last_mask: torch.Tensor | None = None
        self.path_rates: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool_path(x)
        m = self.mask(pooled)
        self.last_mask = m.detach()
        conv = self.conv(x)
        if self.training and self.spec.plastic > 0:
            self.record_path_rates(conv, pooled)
        return m * conv + (1 - m) * pooled


class AnnNetwork(Network):
    """ReLU network of a NetworkSpec; the interface the trainer and the attacks use.

    ``blocks`` are the layers with units (everything but flatten); the neuron spec (decays,
    sigma) is ignored: there is no randomness besides Flex ``eta`` noise in training.
    """

    mode = "ann"

    def __init__(self, spec: NetworkSpec, seed: int = 0) -> None:
        super().__init__(spec, seed)
        self.encoder = AnnEncoder(spec.encoding)
        layers: list[torch.nn.Module] = []
        for layer in spec.layers:
            if isinstance(layer, FlattenSpec):
                layers.append(Flatten(time_axis=False))
            elif isinstance(layer, ConvSpec):
                layers.append(AnnConv(layer))
            elif isinstance(layer, FlexSpec):
                layers.append(AnnFlex(layer, self.generator))
            else:
                layers.append(AnnDense(layer))
        self.layers = torch.nn.ModuleList(layers)

    def run_encoded(self, encoded: torch.Tensor, draws: object = None) -> list[torch.Tensor]:
        """Activations of every unit layer, [B, *shape, 1] each (ReLU; the last: logits)."""
        out = []
        s = encoded
        last = len(self.blocks) - 1
        k = 0
        for module in self.layers:
            s = module(s)
            if isinstance(module, Flatten):
                continue
            if k < last:
                s = F.relu(s)
            out.append(s.unsqueeze(-1))
            k += 1
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] for [0, 1] pixels x."""
        return self.run_encoded(self.encoder(x))[-1].squeeze(-1)

    def float_twin(self) -> AnnNetwork:
        """A copy (an ANN has no quantisation)."""
        return copy.deepcopy(self)

    def randomness_off_twin(self) -> AnnNetwork:
        """A copy (an ANN draws no decays)."""
        return copy.deepcopy(self)
