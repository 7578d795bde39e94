"""The network description that every stage shares (train -> export -> deploy).

Small declarative dataclasses in the spirit of NIR: they say *what* the network is, not how a
stage runs it. The spec is written into the resolved config, into the netx HDF5 file (as JSON)
and read back by deploy, so nothing is typed twice.

Units: decays are fractions of the state lost per time step (0..1, Loihi grid is 1/4096);
thresholds are in SLAYER units (Loihi ``vThMant`` = threshold * 64); time is in steps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Encoding = Literal["direct", "rate"]
Randomize = Literal["current", "voltage", "both", "none"]

DECAY_SCALE = 4096  # Loihi decays are 12-bit: fraction = d / 4096
WEIGHT_SCALE = 64  # SLAYER weight w <-> Loihi integer weight w * 64 (even, -256..254)


@dataclass(frozen=True)
class EncodingSpec:
    """How a static [0, 1] input becomes T time steps of input spikes.

    ``direct``: every step carries the pixel as a graded spike ``round(x * 2**input_bits)``,
    and the first synapse shifts right by ``input_bits`` (Loihi weight exponent), so the
    drive equals ``floor(W_int . x_int / 2**input_bits)`` on hardware and in training.
    ``rate``: every step carries a Bernoulli spike with probability ``x``.
    """

    kind: Encoding = "direct"
    timesteps: int = 16
    input_bits: int = 4

    @property
    def input_shift(self) -> int:
        """Right shift applied by the first synapse (0 for binary spikes)."""
        return self.input_bits if self.kind == "direct" else 0


@dataclass(frozen=True)
class NeuronSpec:
    """CUBA-LIF neuron with RandHet decays.

    Each neuron draws its current and/or voltage decay from a logit-normal distribution:
    ``d = sigmoid(logit(mean) + sigma * eps)``, ``eps ~ N(0, 1)``, rounded to the 12-bit grid
    (multiples of 1/4096). ``sigma = 0`` is the stock SLAYER CUBA neuron. A fresh draw is made
    per neuron and per sample at every forward pass.
    """

    threshold: float = 1.25
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    sigma: float = 1.0
    randomize: Randomize = "both"
    tau_grad: float = 1.0
    scale_grad: float = 1.0

    @property
    def randomizes_current(self) -> bool:
        return self.sigma > 0 and self.randomize in ("current", "both")

    @property
    def randomizes_voltage(self) -> bool:
        return self.sigma > 0 and self.randomize in ("voltage", "both")


@dataclass(frozen=True)
class DenseSpec:
    """A fully connected synapse followed by a layer of RandHet CUBA neurons."""

    in_features: int
    out_features: int
    kind: Literal["dense"] = "dense"


LayerSpec = DenseSpec


@dataclass(frozen=True)
class NetworkSpec:
    """A feed-forward spiking network: encoding, then layers of the same neuron type."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    encoding: EncodingSpec = field(default_factory=EncodingSpec)
    num_classes: int = 10

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        expected = 1
        for n in self.input_shape:
            expected *= n
        for i, layer in enumerate(self.layers):
            if layer.in_features != expected:
                raise ValueError(
                    f"layer {i} expects {layer.in_features} inputs, previous gives {expected}"
                )
            expected = layer.out_features
        if expected != self.num_classes:
            raise ValueError(f"last layer has {expected} neurons, num_classes={self.num_classes}")

    @classmethod
    def mlp(
        cls,
        input_shape: tuple[int, ...],
        hidden: list[int] | tuple[int, ...],
        num_classes: int,
        neuron: NeuronSpec,
        encoding: EncodingSpec,
    ) -> NetworkSpec:
        """A dense network ``input -> hidden... -> num_classes``."""
        n_in = 1
        for n in input_shape:
            n_in *= n
        sizes = [n_in, *hidden, num_classes]
        layers = tuple(DenseSpec(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        return cls(tuple(input_shape), layers, neuron, encoding, num_classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkSpec:
        layers = []
        for layer in d["layers"]:
            if layer.get("kind", "dense") != "dense":
                raise ValueError(f"unknown layer kind {layer.get('kind')!r}")
            layers.append(DenseSpec(int(layer["in_features"]), int(layer["out_features"])))
        return cls(
            input_shape=tuple(int(n) for n in d["input_shape"]),
            layers=tuple(layers),
            neuron=NeuronSpec(**d["neuron"]),
            encoding=EncodingSpec(**d["encoding"]),
            num_classes=int(d["num_classes"]),
        )

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        return cls.from_dict(json.loads(text))
