"""Trainable models of a :class:`~randhet.spec.NetworkSpec`: the RandHet CUBA neuron and its
blocks (lava-dl SLAYER), the Flex layer, the spiking network, its ANN baseline, and the torch
model of an exported network. Training, attacks and analysis use them; none needs Lava
processes."""

from randhet.models.base import EVAL_BATCH, Flatten, Network
from randhet.models.spiking import SpikingNetwork, build_network

__all__ = ["EVAL_BATCH", "Flatten", "Network", "SpikingNetwork", "build_network"]
