"""What a backend returns for a batch of samples (the same for Lava and the emulator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RunResult:
    """Spike rasters and activity of every spiking layer, torch layout."""

    rasters: list[np.ndarray]  # per spiking layer [S, *shape, T] bool
    active_steps: list[np.ndarray]  # per spiking layer [S]: neuron-steps with nonzero u or v

    @staticmethod
    def concat(parts: list[RunResult]) -> RunResult:
        """The results of consecutive sample ranges as one."""
        return RunResult(
            [np.concatenate(layer) for layer in zip(*(p.rasters for p in parts), strict=True)],
            [np.concatenate(layer) for layer in zip(*(p.active_steps for p in parts), strict=True)],
        )
