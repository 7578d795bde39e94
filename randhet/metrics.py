"""NeuroBench-style activity and operation counts, in plain numpy.

Definitions (NeuroBench): activation sparsity is zero outputs / all outputs of the spiking
neurons over every time step; effective synaptic operations count only nonzero input x nonzero
weight pairs (ACs for binary inputs, MACs for graded ones) and should be computed on the
deployed, quantized weights; dense synaptic operations count every (input, output) pair.
All counts are per sample.
"""

from __future__ import annotations

import numpy as np


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _fan_in_matrix(weight: np.ndarray) -> np.ndarray:
    weight = np.asarray(weight)
    if weight.ndim < 2:
        raise ValueError(f"weight must be [out, in, ...] with ndim >= 2, got shape {weight.shape}")
    if not (np.issubdtype(weight.dtype, np.integer) or np.issubdtype(weight.dtype, np.floating)):
        raise ValueError(f"weight must be numeric, got dtype {weight.dtype}")
    return weight.reshape(weight.shape[0], -1)


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


def dense_synops(weight: np.ndarray, timesteps: int) -> int:
    """Synaptic operations per sample if every (input, output) pair fires every time step.

    ``weight``: [out, in, ...]; the fan-in is the product of the trailing dims, i.e. the array
    is treated as a dense [out, prod(in...)] matrix. Returns ``weight.size * timesteps``.
    """
    matrix = _fan_in_matrix(weight)
    return int(matrix.size) * _positive_int("timesteps", timesteps)


def effective_synops(weight: np.ndarray, input_nonzero_counts: np.ndarray) -> np.ndarray:
    """Effective synaptic operations per sample: nonzero input x nonzero weight pairs only.

    ``weight``: deployed (quantized) weights [out, in, ...], fan-in = product of trailing dims;
    ``input_nonzero_counts``: [S, in] (or [S, in, ...] matching weight's trailing dims), the number
    of time steps each presynaptic input was nonzero (a spike or nonzero graded value) in each
    sample. Returns int64 [S] with ``sum_i count[s, i] * nnz(weight[:, i])``.
    """
    matrix = _fan_in_matrix(weight)
    counts = np.asarray(input_nonzero_counts)
    if counts.ndim < 2:
        raise ValueError(f"input_nonzero_counts must be [S, in], got shape {counts.shape}")
    counts = counts.reshape(counts.shape[0], -1)
    if counts.shape[1] != matrix.shape[1]:
        raise ValueError(
            f"input_nonzero_counts has fan-in {counts.shape[1]} but weight {np.shape(weight)} "
            f"has fan-in {matrix.shape[1]}"
        )
    if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise ValueError(f"input_nonzero_counts must be numeric, got dtype {counts.dtype}")
    if counts.size and (
        not np.all(np.isfinite(counts)) or counts.min() < 0 or np.any(counts != np.round(counts))
    ):
        raise ValueError("input_nonzero_counts must hold non-negative whole numbers")
    nnz_per_input = np.count_nonzero(matrix, axis=0).astype(np.int64)
    return counts.astype(np.int64) @ nnz_per_input


def neuron_updates(neurons: int, timesteps: int) -> int:
    """Neuron state updates per sample: every neuron every time step (``neurons * timesteps``)."""
    return _positive_int("neurons", neurons) * _positive_int("timesteps", timesteps)
