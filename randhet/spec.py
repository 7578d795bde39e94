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
from typing import Any, Literal, get_args

Mode = Literal["snn", "hybrid", "ann"]  # training mode: STBP, straight-through, ReLU ANN
Encoding = Literal["direct", "rate", "events"]
Randomize = Literal["current", "voltage", "both", "none"]
Distribution = Literal["logit_normal", "gaussian"]
Granularity = Literal["neuron", "channel", "profile"]
Resample = Literal["forward", "step", "fixed"]
FlexMask = Literal["static", "dynamic", "pos"]
FlexPool = Literal["avg", "max"]
FlexGate = Literal["sigmoid", "hard"]

MODES: tuple[str, ...] = get_args(Mode)

DECAY_SCALE = 4096  # Loihi decays are 12-bit: fraction = d / 4096
WEIGHT_SCALE = 64  # SLAYER weight w <-> Loihi integer weight w * 64 (even, -256..254)


@dataclass(frozen=True)
class EncodingSpec:
    """How an input becomes T time steps of input spikes (the first stage of the model).

    ``direct``: every step carries the (normalised) pixel as a graded spike
    ``round(x * 2**input_bits)``; the first synapse shifts right by ``input_bits`` (a Loihi
    weight exponent), so hardware and training compute ``floor(W_int . x_int / 2**input_bits)``.
    ``rate``: every step carries a Bernoulli spike with probability x (no normalisation).
    ``events``: the input already is [C, H, W, T] binary event frames (N-MNIST).
    ``mean`` / ``std``: per-channel normalisation ``(x - mean) / std`` applied inside the model,
    so gradients and attacks act on [0, 1] pixels (direct encoding only; empty = none).
    """

    kind: Encoding = "direct"
    timesteps: int = 16
    input_bits: int = 4
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def input_shift(self) -> int:
        """Right shift applied by the first synapse (0 for binary spikes)."""
        return self.input_bits if self.kind == "direct" else 0


@dataclass(frozen=True)
class NeuronSpec:
    """CUBA-LIF neuron with RandHet decays.

    Each decay (fraction of the state lost per step, 12-bit grid) is drawn around its mean:
    ``logit_normal``: ``d = sigmoid(logit(mean) + sigma * eps)`` (the reference code's form);
    ``gaussian``: ``d = clip(mean + sigma * eps, 0, 1)`` (sigma in decay fraction units);
    ``eps ~ N(0, 1)``, then ``d`` is rounded to a multiple of 1/4096 and clamped to the range a
    decay register holds (``current_decay_range``, ``voltage_decay_range``: integer decays,
    default Loihi 1's, which Lava's fixed-point LIF shares: the current decay register holds
    ``d - 1`` in 0..4095, the voltage decay register ``d`` in 0..4095; see
    ``hardware_profiles/loihi1.toml`` ``[arithmetic]``). ``granularity``: one draw
    per neuron, per channel, or per decay profile (``profile``: the form that fits a Loihi
    core: a layer's neurons, flat in (C, H, W) order, are cut into cores of ``core_size``
    neurons and each neuron is bound, once and from the seed, to one of ``profiles`` (K)
    profiles of its core, balanced; every draw is one (du, dv) pair per profile, shared by its
    neurons; see :func:`randhet.decays.profile_binding`). ``resample``: a new draw per sample
    at every forward pass (``forward``), at every time step (``step``), or once, frozen
    (``fixed``: plain heterogeneity). ``sigma = 0`` is the stock SLAYER CUBA neuron.
    ``learn_decay`` makes the mean decays trainable (with a correct gradient, unlike SLAYER's).
    """

    threshold: float = 1.25
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    sigma: float = 1.0
    randomize: Randomize = "both"
    distribution: Distribution = "logit_normal"
    granularity: Granularity = "neuron"
    resample: Resample = "forward"
    learn_decay: bool = False
    tau_grad: float = 1.0
    scale_grad: float = 1.0
    current_decay_range: tuple[int, int] = (1, DECAY_SCALE)
    voltage_decay_range: tuple[int, int] = (0, DECAY_SCALE - 1)
    profiles: int = 0  # K decay profiles per core (granularity "profile")
    core_size: int = 0  # neurons per core of the binding (granularity "profile")

    def __post_init__(self) -> None:
        if self.granularity == "profile" and (self.profiles < 1 or self.core_size < 1):
            raise ValueError("granularity 'profile' needs profiles >= 1 and core_size >= 1, "
                             f"got profiles={self.profiles}, core_size={self.core_size}")

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

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.out_features,)


@dataclass(frozen=True)
class ConvSpec:
    """A KxK convolution (stride, padding K//2) followed by RandHet CUBA neurons.

    Shapes are (channels, height, width). A pooling layer is a ``ConvSpec`` with
    ``pool = True``: a depthwise KxK convolution with stride K and fixed equal weights
    ``pool_weight`` (sum pooling), which netx and Lava carry as an ordinary convolution. A
    stock netx file's depthwise conv (groups = channels) is read as ``pool = True`` too, with
    its own stride, padding and weights.
    """

    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: int = 3
    stride: int | tuple[int, int] = 1  # (height, width) where they differ (stock netx files)
    padding: int | tuple[int, int] = 1
    pool: bool = False
    pool_weight: float = 1.0
    kind: Literal["conv"] = "conv"

    @property
    def groups(self) -> int:
        return self.in_shape[0] if self.pool else 1

    @property
    def strides(self) -> tuple[int, int]:
        """(height, width) stride."""
        return _pair(self.stride)

    @property
    def paddings(self) -> tuple[int, int]:
        """(height, width) zero padding."""
        return _pair(self.padding)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        size = [(n + 2 * p - self.kernel) // s + 1
                for n, p, s in zip((h, w), self.paddings, self.strides, strict=True)]
        return (self.out_channels, size[0], size[1])


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class InputSpec:
    """lava-dl netx's input layer: CUBA neurons of ``shape`` with no synapse, each driven by
    its bias alone. A sample ``x`` (one value per neuron) sets ``bias_mant = round(weight * x
    + bias)``, the transform netx reads from the file. Only read from stock netx files (lava-dl's
    PilotNet has one); randhet never trains it."""

    shape: tuple[int, ...]
    weight: int = 64
    bias: int = 0
    kind: Literal["input"] = "input"

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


@dataclass(frozen=True)
class FlexSpec:
    """A Flex layer ``u = m * Conv(x) + (1 - m) * Pool(x)`` followed by RandHet CUBA neurons.

    Conv: KxK, stride 1, padding K//2. Pool: KxK average (``avg``, zero padding counted, i.e.
    a linear sum / K**2) or max (``max``) pooling with the same stride and padding, so both
    paths give (H, W); its channels are reconciled by nearest channel interpolation: output
    channel o takes pooled input channel ``o * C_in // C_out`` (repeat or subsample; linear).
    Mask: ``static`` is one learned logit per output channel, ``m = gate(logit)``; ``pos`` is
    one learned logit per (output channel, h, w), still input-independent, but a kernel that
    varies with position is not a convolution: it trains and is refused at export;
    ``dynamic`` is the reference code's ``m = gate(BatchNorm(P - theta))`` per (sample,
    channel, h, w, t) with a learned per-channel theta. Gate: ``sigmoid`` or ``hard``
    (``clip(z / 6 + 0.5, 0, 1)``; the default for a dynamic mask, as in the reference code).
    ``eta`` > 0 adds the poster's temporal noise ``eta(t) ~ N(0, eta**2)`` (per sample,
    channel and step) to the logits in training only (evaluation and deployment: no noise).
    ``plastic`` > 0 (lambda) turns on the poster's plasticity rule for a static or ``pos``
    mask: after every optimizer step the logits move by ``lambda * (r_sel - r_inv)`` (see
    :meth:`randhet.models.flex.RandHetFlex.plasticity_step`); training-only, no effect on
    deployment. Only ``static`` + ``avg`` is one convolution and deploys (as the equivalent
    ConvSpec).
    """

    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: int = 3
    mask: FlexMask = "static"
    pool: FlexPool = "avg"
    gate: FlexGate | None = None  # None: "hard" for a dynamic mask, else "sigmoid"
    eta: float = 0.0
    plastic: float = 0.0
    kind: Literal["flex"] = "flex"

    def __post_init__(self) -> None:
        if self.gate is None:
            object.__setattr__(self, "gate", default_gate(self.mask))

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        size = [n + 2 * self.padding - self.kernel + 1 for n in (h, w)]
        return (self.out_channels, size[0], size[1])

    @property
    def deployable(self) -> bool:
        """Static mask and linear pool path: the layer is exactly one convolution."""
        return self.mask == "static" and self.pool == "avg"

    def as_conv(self) -> ConvSpec:
        """The convolution a deployable Flex layer folds into."""
        return ConvSpec(self.in_shape, self.out_channels, self.kernel, 1, self.padding)


def default_gate(mask: str) -> FlexGate:
    """The gate a Flex mask uses unless told otherwise: hard for a dynamic mask, else sigmoid."""
    return "hard" if mask == "dynamic" else "sigmoid"


@dataclass(frozen=True)
class FlattenSpec:
    """(C, H, W) -> C*H*W features, in torch's (C, H, W) order."""

    in_shape: tuple[int, ...]
    kind: Literal["flatten"] = "flatten"

    @property
    def out_shape(self) -> tuple[int, ...]:
        n = 1
        for d in self.in_shape:
            n *= d
        return (n,)


LayerSpec = DenseSpec | ConvSpec | FlexSpec | FlattenSpec | InputSpec
_KINDS = {"dense": DenseSpec, "conv": ConvSpec, "flex": FlexSpec, "flatten": FlattenSpec,
          "input": InputSpec}


@dataclass(frozen=True)
class NetworkSpec:
    """A feed-forward spiking network: encoding, then layers of one neuron type."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    encoding: EncodingSpec = field(default_factory=EncodingSpec)
    num_classes: int = 10

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        shape = tuple(self.input_shape)
        if self.encoding.kind == "events":
            shape = shape[:-1]  # the last input axis is time
        for i, layer in enumerate(self.layers):
            expected = _in_shape(layer)
            if _numel(expected) != _numel(shape) or (
                len(expected) == 3 and tuple(expected) != shape
            ):
                raise ValueError(f"layer {i} expects input {expected}, previous gives {shape}")
            shape = layer.out_shape
        if shape != (self.num_classes,):
            raise ValueError(f"the last layer gives {shape}, num_classes={self.num_classes}")

    def deployed(self) -> NetworkSpec:
        """The spec a deployment runs: every (deployable) Flex layer as its folded ConvSpec."""
        layers = tuple(ly.as_conv() if isinstance(ly, FlexSpec) else ly for ly in self.layers)
        return NetworkSpec(self.input_shape, layers, self.neuron, self.encoding, self.num_classes)

    @property
    def spiking_layers(self) -> tuple[DenseSpec | ConvSpec | FlexSpec | InputSpec, ...]:
        """The layers that have neurons (everything but flatten)."""
        return tuple(ly for ly in self.layers if not isinstance(ly, FlattenSpec))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkSpec:
        layers = []
        for layer in d["layers"]:
            kind = layer.get("kind")
            if kind not in _KINDS:
                raise ValueError(f"unknown layer kind {kind!r}")
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in layer.items()}
            layers.append(_KINDS[kind](**fields))
        enc = {k: tuple(v) if isinstance(v, list) else v for k, v in d["encoding"].items()}
        return cls(
            input_shape=tuple(int(n) for n in d["input_shape"]),
            layers=tuple(layers),
            neuron=NeuronSpec(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in d["neuron"].items()}),
            encoding=EncodingSpec(**enc),
            num_classes=int(d["num_classes"]),
        )

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        return cls.from_dict(json.loads(text))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _in_shape(layer: LayerSpec) -> tuple[int, ...]:
    if isinstance(layer, DenseSpec):
        return (layer.in_features,)
    return tuple(layer.in_shape)
