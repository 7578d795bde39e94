"""NeuroBench-style metrics on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from randhet.metrics import activation_sparsity, dense_synops, effective_synops, neuron_updates

# 2 inputs -> 3 neurons; column 0 has 2 nonzero weights, column 1 has 1.
WEIGHT = np.array([[2, 0], [0, 0], [6, -8]], dtype=np.int32)


def test_activation_sparsity_hand_value() -> None:
    # 3 neurons x 4 steps = 12 outputs. Sample 0: 2 spikes -> 10/12; sample 1: 0 -> 1.
    # Mean = (10/12 + 1) / 2 = 11/12.
    value = activation_sparsity(np.array([2, 0]), neurons=3, timesteps=4)
    assert value == pytest.approx(11 / 12)
    assert activation_sparsity(np.array([12]), neurons=3, timesteps=4) == 0.0


def test_activation_sparsity_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        activation_sparsity(np.zeros((2, 3)), neurons=3, timesteps=4)
    with pytest.raises(ValueError, match="shape"):
        activation_sparsity(np.zeros(0), neurons=3, timesteps=4)
    with pytest.raises(ValueError, match="12"):
        activation_sparsity(np.array([13]), neurons=3, timesteps=4)
    with pytest.raises(ValueError, match="neurons"):
        activation_sparsity(np.array([1]), neurons=0, timesteps=4)


def test_dense_synops_hand_value() -> None:
    # 3 x 2 pairs, 4 steps -> 24; zeros in the weight still count.
    assert dense_synops(WEIGHT, timesteps=4) == 24
    # [out=4, in=2, 3, 3] -> fan-in 18, 4*18 = 72 pairs, 5 steps -> 360.
    assert dense_synops(np.ones((4, 2, 3, 3)), timesteps=5) == 360


def test_effective_synops_hand_value() -> None:
    # Sample 0: input 0 nonzero 3 steps, input 1 once -> 3*2 + 1*1 = 7.
    # Sample 1: input 0 never, input 1 four steps -> 0*2 + 4*1 = 4.
    counts = np.array([[3, 1], [0, 4]])
    result = effective_synops(WEIGHT, counts)
    assert result.tolist() == [7, 4]
    assert result.dtype == np.int64


def test_effective_synops_trailing_dims() -> None:
    # weight [out=2, 1, 2]: flattened columns [[1, 0], [1, 5]] -> nnz per input [2, 1].
    weight = np.array([[[1, 0]], [[1, 5]]])
    counts = np.array([[[2, 3]]])  # [S=1, 1, 2]
    assert effective_synops(weight, counts).tolist() == [2 * 2 + 3 * 1]


def test_effective_synops_errors() -> None:
    with pytest.raises(ValueError, match="fan-in 3"):
        effective_synops(WEIGHT, np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match=r"\[S, in\]"):
        effective_synops(WEIGHT, np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="ndim >= 2"):
        effective_synops(np.array([1, 2]), np.zeros((1, 2), dtype=int))
    with pytest.raises(ValueError, match="non-negative whole"):
        effective_synops(WEIGHT, np.array([[1.5, 0.0]]))
    with pytest.raises(ValueError, match="non-negative whole"):
        effective_synops(WEIGHT, np.array([[-1, 0]]))


def test_dense_synops_errors() -> None:
    with pytest.raises(ValueError, match="ndim >= 2"):
        dense_synops(np.ones(3), timesteps=4)
    with pytest.raises(ValueError, match="timesteps"):
        dense_synops(WEIGHT, timesteps=0)


def test_neuron_updates() -> None:
    assert neuron_updates(3, 4) == 12
    with pytest.raises(ValueError, match="timesteps"):
        neuron_updates(3, -1)
