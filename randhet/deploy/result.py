"""What a backend returns for a batch of samples (the same for Lava and the emulator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ChipEvents = list[dict[str, int]]  # per spiking layer: event name -> count


@dataclass(frozen=True)
class RunResult:
    """Spike rasters and activity of every spiking layer, torch layout."""

    rasters: list[np.ndarray]  # per spiking layer [S, *shape, T] bool
    active_steps: list[np.ndarray]  # per spiking layer [S]: neuron-steps with nonzero u or v
    events: ChipEvents | None = None  # where a chip could differ (emulator with a watch only)

    @staticmethod
    def concat(parts: list[RunResult]) -> RunResult:
        """The results of consecutive sample ranges as one."""
        events = None
        if all(p.events is not None for p in parts):
            events = [{key: sum(layer[key] for layer in layers) for key in layers[0]}
                      for layers in zip(*(p.events for p in parts), strict=True)]
        return RunResult(
            [np.concatenate(layer) for layer in zip(*(p.rasters for p in parts), strict=True)],
            [np.concatenate(layer) for layer in zip(*(p.active_steps for p in parts), strict=True)],
            events,
        )
