"""The layer-token grammar of ``model.layers``: parsing tokens into layer specs, and back.

Tokens: ``conv:C[:kK][:sS]`` (KxK conv, stride S, padding K//2), ``pool:K`` (KxK sum pooling as
a fixed depthwise conv), ``flex:C[:kK][:static|dynamic|pos][:avg|max][:sigmoid|hard][:etaX]
[:plasticL]`` (a Flex layer, see :class:`~randhet.spec.FlexSpec`), ``flatten`` and ``dense:N``;
the output dense layer is appended by :func:`build_layers`. :func:`layer_token` writes a layer's
canonical token (defaults left out) and :func:`layer_names` the names reports use.
"""

from __future__ import annotations

from typing import Any, get_args

from randhet.spec import (
    ConvSpec,
    DenseSpec,
    EncodingSpec,
    FlattenSpec,
    FlexGate,
    FlexMask,
    FlexPool,
    FlexSpec,
    InputSpec,
    LayerSpec,
    NetworkSpec,
    NeuronSpec,
    default_gate,
)

_LAYER_GRAMMAR = (
    "conv:C[:kK][:sS], pool:K, flex:C[:kK][:static|dynamic|pos][:avg|max][:sigmoid|hard][:etaX]"
    "[:plasticL], "
    "flatten or dense:N"
)


def parse_layer_token(token: str) -> tuple[str, dict[str, Any]]:
    """Parse ``conv:C[:kK][:sS]``, ``pool:K``, ``flex:C[:kK][:static|dynamic|pos][:avg|max]
    [:sigmoid|hard][:etaX][:plasticL]``, ``flatten`` or ``dense:N``; ValueError if bad."""
    kind, *args = token.strip().split(":")
    values: dict[str, Any] = {}
    try:
        if kind == "flex" and args:
            return kind, _parse_flex(args)
        if kind == "flatten" and not args:
            return kind, values
        if kind in ("dense", "pool", "conv") and args:
            values = {"n": int(args[0]), "k": 3, "s": 1}
            options = args[1:] if kind == "conv" else (args[1:] or [])
            if kind != "conv" and options:
                raise ValueError
            for a in options:
                if a[:1] not in ("k", "s"):
                    raise ValueError
                values[a[0]] = int(a[1:])
            if min(values.values()) >= 1:
                return kind, values
    except ValueError:
        pass
    raise ValueError(f"bad layer {token!r}: expected {_LAYER_GRAMMAR}")


def _parse_flex(args: list[str]) -> dict[str, Any]:
    """Values of a ``flex`` token's arguments; ValueError if bad or repeated."""
    values: dict[str, Any] = {"n": int(args[0]), "k": 3}
    seen: set[str] = set()
    for a in args[1:]:
        if a in get_args(FlexMask):
            key, value = "mask", a
        elif a in get_args(FlexPool):
            key, value = "pool", a
        elif a in get_args(FlexGate):
            key, value = "gate", a
        elif a.startswith("eta"):
            key, value = "eta", float(a[3:])
        elif a.startswith("plastic"):
            key, value = "plastic", float(a[7:])
        elif a[:1] == "k":
            key, value = "k", int(a[1:])
        else:
            raise ValueError
        if key in seen:
            raise ValueError
        seen.add(key)
        values[key] = value
    if values["n"] < 1 or values["k"] < 1 or not 0 <= values.get("eta", 0.0) < float("inf"):
        raise ValueError
    if not 0 <= values.get("plastic", 0.0) < float("inf"):
        raise ValueError
    if values.get("plastic") and values.get("mask") == "dynamic":
        raise ValueError  # the rule moves learned logits: static or pos masks only
    values.setdefault("mask", "static")
    values.setdefault("pool", "avg")
    values.setdefault("gate", default_gate(values["mask"]))
    values.setdefault("eta", 0.0)
    values.setdefault("plastic", 0.0)
    return values


def build_layers(
    tokens: list[str] | tuple[str, ...], input_shape: tuple[int, ...], num_classes: int
) -> tuple[LayerSpec, ...]:
    """Layer specs for ``tokens`` on inputs of ``input_shape``; the output dense is appended.

    A dense layer after spatial layers gets an implicit flatten.
    """
    layers: list[LayerSpec] = []
    shape = tuple(input_shape)
    for token in [*tokens, f"dense:{num_classes}"]:
        kind, a = parse_layer_token(token)
        if kind in ("conv", "pool", "flex"):
            if len(shape) != 3:
                raise ValueError(f"layer {token!r} needs (C, H, W) input, got {shape}")
            chw = (shape[0], shape[1], shape[2])
            if kind == "conv":
                layer: LayerSpec = ConvSpec(chw, a["n"], a["k"], a["s"], a["k"] // 2)
            elif kind == "flex":
                layer = FlexSpec(
                    chw, a["n"], a["k"], a["mask"], a["pool"], a["gate"], a["eta"], a["plastic"]
                )
            else:
                layer = ConvSpec(chw, shape[0], a["n"], a["n"], 0, pool=True)
            if min(layer.out_shape[1:]) < 1:
                raise ValueError(f"layer {token!r} shrinks {shape} to nothing")
        elif kind == "flatten":
            layer = FlattenSpec(shape)
        else:
            if len(shape) != 1:
                layers.append(FlattenSpec(shape))
                shape = layers[-1].out_shape
            layer = DenseSpec(shape[0], a["n"])
        layers.append(layer)
        shape = layer.out_shape
    return tuple(layers)


def network_from_tokens(
    input_shape: tuple[int, ...],
    tokens: list[str] | tuple[str, ...],
    num_classes: int,
    neuron: NeuronSpec,
    encoding: EncodingSpec,
) -> NetworkSpec:
    """The network of layer tokens (``conv:16``, ``pool:2``, ``dense:128`` ...) on inputs of
    ``input_shape`` (event data: the last axis is time); ValueError if they do not fit."""
    spatial = tuple(input_shape[:-1]) if encoding.kind == "events" else tuple(input_shape)
    layers = build_layers(tokens, spatial, num_classes)
    return NetworkSpec(tuple(input_shape), layers, neuron, encoding, num_classes)


def layer_token(layer: LayerSpec) -> str:
    """The canonical token of a layer (defaults left out): ``dense:10``, ``pool:2``,
    ``conv:16:k5``, ``flex:4:dynamic``, ``flatten``; a stock file's depthwise conv that is no
    ``pool:K`` is named ``depthwise:k3`` (with its stride), a name only."""
    if isinstance(layer, FlattenSpec):
        return "flatten"
    if isinstance(layer, DenseSpec):
        return f"dense:{layer.out_features}"
    if isinstance(layer, ConvSpec):
        sh, sw = layer.strides
        if layer.pool and (sh, sw) == (layer.kernel,) * 2 and layer.paddings == (0, 0):
            return f"pool:{layer.kernel}"
        # a depthwise conv of another shape (stock netx files only): named, never parsed back
        parts = [f"depthwise:k{layer.kernel}" if layer.pool else f"conv:{layer.out_channels}"]
        parts += [f"k{layer.kernel}"] if layer.kernel != 3 and not layer.pool else []
        parts += [] if (sh, sw) == (1, 1) else [f"s{sh}"] if sh == sw else [f"s{sh}x{sw}"]
        return ":".join(parts)
    if isinstance(layer, InputSpec):
        return "input"
    parts = [f"flex:{layer.out_channels}"]
    if layer.kernel != 3:
        parts.append(f"k{layer.kernel}")
    if layer.mask != "static":
        parts.append(layer.mask)
    if layer.pool != "avg":
        parts.append(layer.pool)
    if layer.gate != default_gate(layer.mask):
        parts.append(str(layer.gate))
    if layer.eta:
        parts.append(f"eta{layer.eta:g}")
    if layer.plastic:
        parts.append(f"plastic{layer.plastic:g}")
    return ":".join(parts)


def layer_names(spec: NetworkSpec) -> list[str]:
    """A name per spiking layer, as every report writes it: ``"<index>:<token>"``, e.g.
    ``"0:flex:4"``, ``"1:dense:10"``."""
    return [f"{k}:{layer_token(ly)}" for k, ly in enumerate(spec.spiking_layers)]
