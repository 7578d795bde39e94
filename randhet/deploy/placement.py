"""The compiler's cut of a layer into cores, where a profile's ``[placement]`` rules say how the
chip's compiler does it (:class:`~randhet.hardware.Placement`: fitted to published compiler
output). Pure arithmetic on shapes; :mod:`randhet.deploy.fit` reports what it gives."""

from __future__ import annotations

import math
from dataclasses import dataclass

from randhet.hardware import Placement
from randhet.network import ExportedLayer
from randhet.spec import ConvSpec, DenseSpec, InputSpec


@dataclass(frozen=True)
class Cut:
    """Neurons per core (contiguous in ``order``), what bounds it, and a core's words."""

    neurons_per_core: int
    order: str | None  # "WHC": tiles of whole columns (width-major); None: dense
    bound_by: str  # the rule that sets the size
    core_memory_words: int | None  # synaptic memory of the fullest core (None: not modelled)


def spatial_columns(shape: tuple[int, ...], below: int) -> int | None:
    """Columns per tile of a (C, H, W) layer: the widest power of two whose tile of all C and
    H has fewer than ``below`` neurons (None: one column alone has that many)."""
    c, h, _ = shape
    column = c * h
    if column >= below:
        return None
    width = 1
    while 2 * width * column < below:
        width *= 2
    return width


def dense_block(in_features: int, neurons: int, words: int, per_word: int) -> int | None:
    """Neurons per core of a dense layer: the largest block whose rows (one per input axon, of
    ``ceil(block / per_word)`` words) fit ``words`` (None: one neuron's rows do not)."""
    per_row = words // max(in_features, 1)
    return None if per_row < 1 else min(neurons, per_row * per_word)


def compiler_cut(layer: ExportedLayer, rules: Placement, neurons_per_core: int) -> Cut | None:
    """The compiler's cut of ``layer`` under ``rules`` (and the chip's neurons per core), or
    None where the rules say nothing about this kind of layer."""
    ls = layer.spec
    spatial = isinstance(ls, ConvSpec) or (isinstance(ls, InputSpec) and len(ls.shape) == 3)
    if spatial and rules.spatial_tile_neurons_below is not None:
        shape = tuple(ls.out_shape)
        width = spatial_columns(shape, rules.spatial_tile_neurons_below)
        if width is None:
            return None
        p = min(width * shape[0] * shape[1], neurons_per_core, layer.neurons)
        return Cut(p, "WHC", f"tiles of all channels and rows, {width} column(s): fewer than "
                   f"{rules.spatial_tile_neurons_below} neurons", None)
    words, per_word = rules.synaptic_memory_words_per_core, rules.dense_synapses_per_word
    if isinstance(ls, DenseSpec) and words is not None and per_word is not None:
        p = dense_block(ls.in_features, layer.neurons, words, per_word)
        if p is None:
            return None
        p = min(p, neurons_per_core)
        bound = f"{ls.in_features} rows of ceil(neurons / {per_word}) words within {words} words"
        seen = rules.fan_in_axons_seen
        if seen is not None and ls.in_features > seen:
            bound += (f"; its fan-in of {ls.in_features} axons is beyond the {seen} the compiler "
                      "was seen to place on a core (whether a core takes it: unknown)")
        return Cut(p, None, bound, ls.in_features * math.ceil(p / per_word))
    return None
