"""randhet's workload counts beside NeuroBench 2.3.0's own metrics (run on the snnTorch import of
randhet's NIR file, same inputs), on a network small enough to count by hand: where the
definitions agree the numbers are equal; where they differ, by what the README says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from randhet.config import DEFAULTS
from randhet.layer_tokens import network_from_tokens
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import EncodingSpec, NeuronSpec

ROOT = Path(__file__).resolve().parents[1]

# 4 binary inputs -> 10 neurons, decays 4096 (no memory: u = drive, v = u), vThMant 80: a
# neuron spikes at a step exactly when W . x > 80 there (Loihi's threshold is strict, SLAYER's
# is not: no sum here equals 80).
W = np.zeros((10, 4), dtype=np.int64)
W[0] = [90, 0, 0, 0]    # spikes where x0
W[1] = [46, 46, 0, 0]   # where x0 and x1
W[2] = [0, 0, 100, 0]   # where x2
W[4] = [50, 0, 0, 50]   # where x0 and x3
W[5] = [20, 20, 20, 20]  # never here (needs all four)
X = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]]).T  # [4 inputs, 3 steps]

# By hand, per sample:
# - dense SynOps: 10 x 4 synapses x 3 steps = 120;
# - effective SynOps: nonzero weights per input column (4, 2, 2, 2) summed over the active
#   inputs of each step: (4 + 2 + 2) + (2 + 2) + 4 = 16;
# - spikes: step 0 rows 0, 1, 4; step 1 row 2; step 2 row 0: 5 of 30, sparsity 25 / 30;
# - randhet's active updates (u or v nonzero): 4 + 3 + 4 = 11 of 30 neuron updates;
# - NeuroBench's membrane updates: all 10 neurons at the first step, then the neurons whose
#   membrane (after reset) changed from the step before: rows 1 and 5 at step 1, rows 4 and 5
#   at step 2: 14.
HAND = {"synops_dense": 120, "synops_effective": 16, "sparsity": 25 / 30, "active": 11,
        "membrane_updates": 14}


def _compare():  # type: ignore[no-untyped-def]
    if str(ROOT / "benchmarks") not in sys.path:  # its harness and helper modules
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "neurobench_compare", ROOT / "benchmarks" / "neurobench_compare.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _network() -> ExportedNetwork:
    neuron = NeuronSpec(threshold=1.25, current_decay=1.0, voltage_decay=1.0, sigma=0.0)
    spec = network_from_tokens((4,), [], 10, neuron, EncodingSpec("rate", 3))
    layer = ExportedLayer(spec.spiking_layers[0], W, 4096, 4096, 80)
    return ExportedNetwork(spec, (layer,), dict(DEFAULTS["data"]), Path("hand.net"))


def test_randhet_and_neurobench_count_the_hand_checked_network() -> None:
    nb = _compare()
    net = _network()
    x = np.stack([X, X])  # two identical samples: per-sample means are the hand counts
    ours = nb.randhet_counts(net, x)
    theirs = nb.neurobench_counts(net, x)
    assert ours["synops_dense"] == theirs["dense"] == HAND["synops_dense"]
    # binary input: NeuroBench counts accumulates (ACs), randhet effective SynOps
    assert ours["synops_effective"] == theirs["effective_acs"] == HAND["synops_effective"]
    assert theirs["effective_macs"] == 0
    assert ours["activation_sparsity"] == pytest.approx(HAND["sparsity"])
    assert theirs["activation_sparsity"] == pytest.approx(HAND["sparsity"])
    # the definitions differ: every neuron every step (30), neuron-steps with state (11),
    # NeuroBench's membrane changes (14)
    assert ours["neuron_updates"] == 30 and ours["active_updates"] == HAND["active"]
    assert theirs["membrane_updates"] == HAND["membrane_updates"]


def test_graded_input_is_macs_for_neurobench_and_synops_for_randhet() -> None:
    """Direct encoding: the first layer's nonzero graded inputs are the same count, which
    NeuroBench files under MACs (non-binary input) and randhet under effective SynOps."""
    nb = _compare()
    net = _network()
    shift = 4
    spec = network_from_tokens((4,), [], 10, net.spec.neuron, EncodingSpec("direct", 3, shift))
    graded = ExportedNetwork(spec, (net.layers[0],), net.data, net.path)
    x = np.stack([X * 7, X * 15])  # graded values where X has spikes
    ours = nb.randhet_counts(graded, x)
    theirs = nb.neurobench_counts(graded, x)
    assert ours["synops_effective_first_layer"] == theirs["effective_macs"] == 16
    assert theirs["effective_acs"] == 0 and theirs["dense"] == ours["synops_dense"] == 120
