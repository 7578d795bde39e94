"""NeuroBench-style activity and operation counts, in plain numpy.

Definitions (NeuroBench): activation sparsity is zero outputs / all outputs of the spiking
neurons over every time step; neuron updates are every neuron at every step. All counts are per
sample. Synaptic operations are counted on the deployed integer weights by
:mod:`randhet.deploy.profiling`.
"""

from __future__ import annotations

import numpy as np


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def activation_sparsity(spike_counts: np.ndarray, neurons: int, timesteps: int) -> float:
    """Fraction of zero outputs over all neurons and time steps, averaged over samples.

    ``spike_counts``: shape [S], total spikes of the layer (or network) in each sample, at most
    one per neuron per time step; ``neurons``: neurons counted; ``timesteps``: steps per sample.
    Returns mean over samples of ``1 - spikes / (neurons * timesteps)``, in [0, 1].
    """
    neurons = _positive_int("neurons", neurons)
    timesteps = _positive_int("timesteps", timesteps)
    counts = np.asarray(spike_counts, dtype=float)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"spike_counts must have shape [S] with S >= 1, got {counts.shape}")
    outputs = neurons * timesteps
    if not np.all(np.isfinite(counts)) or counts.min() < 0 or counts.max() > outputs:
        raise ValueError(
            f"spike_counts must lie in [0, neurons*timesteps = {outputs}], "
            f"got range [{counts.min():g}, {counts.max():g}]"
        )
    return float(np.mean(1.0 - counts / outputs))


def neuron_updates(neurons: int, timesteps: int) -> int:
    """Neuron state updates per sample: every neuron every time step (``neurons * timesteps``)."""
    return _positive_int("neurons", neurons) * _positive_int("timesteps", timesteps)
