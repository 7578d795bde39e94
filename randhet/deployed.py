"""The deployed network's types: what an export writes and every backend runs, in Loihi
integers (read by :mod:`randhet.network` from randhet's netx files and by
:mod:`randhet.stock_netx` from stock lava-dl ones)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from randhet.spec import ConvSpec, DenseSpec, InputSpec, NetworkSpec


@dataclass(frozen=True)
class ExportedLayer:
    """One deployed spiking layer in Loihi integers (torch layouts)."""

    spec: DenseSpec | ConvSpec | InputSpec
    weight: np.ndarray  # int64; dense [out, in], conv [out, in/groups, k, k]; input: empty
    current_decay: int  # mean iDecay, 0..4096
    voltage_decay: int  # mean vDecay, 0..4096
    threshold_mant: int  # vThMant
    fixed_current: np.ndarray | None = None  # frozen draw [*noise_shape] ("fixed" resample)
    fixed_voltage: np.ndarray | None = None
    profile_binding: np.ndarray | None = None  # int64 [neurons], (C, H, W) flat: 0..K-1
    bias: np.ndarray | None = None  # int64 bias mantissa [*shape] (stock netx files)
    bias_exp: int = 6  # the bias is b << bias_exp in state units (netx's 6)
    weight_exp: int = 0  # the synaptic sum is shifted by it (netx's wgtExp)

    @property
    def shape(self) -> tuple[int, ...]:
        """Neuron shape: (n,) or (C, H, W)."""
        return tuple(self.spec.out_shape)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ExportedNetwork:
    """A deployable network: its description, its spiking layers, its data set config (so a
    deployment can rebuild the test split) and the file it was read from or is written to."""

    spec: NetworkSpec
    layers: tuple[ExportedLayer, ...]  # spiking layers only
    data: dict[str, Any]  # empty for a stock netx file: its inputs come from the user
    path: Path
    stock: bool = False  # read from a stock netx file (no randhet metadata, no torch model)

    @property
    def has_input_layer(self) -> bool:
        """netx's bias-driven input layer first: a sample sets its neurons' biases."""
        return isinstance(self.spec.layers[0], InputSpec)
