"""NeuroBench-style metrics on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from randhet.metrics import activation_sparsity, neuron_updates


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


def test_neuron_updates() -> None:
    assert neuron_updates(3, 4) == 12
    with pytest.raises(ValueError, match="timesteps"):
        neuron_updates(3, -1)
