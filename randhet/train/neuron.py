"""The RandHet CUBA-LIF neuron and the dense block that carries it (lava-dl SLAYER based).

The neuron is SLAYER's CUBA neuron whose current and voltage decays are replaced, at every
forward pass, by a fresh per-neuron, per-sample draw on Loihi's 12-bit grid
(:mod:`randhet.decays`). With ``sigma = 0`` it runs exactly SLAYER's code path with the
configured decays, so it equals the stock neuron bit for bit.
"""

from __future__ import annotations

import torch

from randhet._compat import import_slayer_quietly

import_slayer_quietly()

from lava.lib.dl.slayer.block import cuba as cuba_block  # noqa: E402
from lava.lib.dl.slayer.neuron import cuba  # noqa: E402
from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator  # noqa: E402
from lava.lib.dl.slayer.utils import quantize  # noqa: E402

from randhet.decays import DecayDraw, draw_layer  # noqa: E402
from randhet.spec import WEIGHT_SCALE, NeuronSpec  # noqa: E402


def slayer_neuron_params(spec: NeuronSpec) -> dict[str, float]:
    """Keyword arguments of SLAYER's ``cuba.Neuron`` for the mean (sigma = 0) neuron."""
    return {
        "threshold": spec.threshold,
        "current_decay": spec.current_decay,
        "voltage_decay": spec.voltage_decay,
        "tau_grad": spec.tau_grad,
        "scale_grad": spec.scale_grad,
    }


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def floor_to_drive_grid(z: torch.Tensor) -> torch.Tensor:
    """Round synaptic input down to Loihi's integer grid (1/64 in SLAYER units).

    On Loihi the synapse delivers ``(W_int . x) >> shift``, an integer, which the neuron
    left-shifts by 6. Binary spikes already land on the grid; graded inputs do not.
    """
    return _FloorSTE.apply(z * WEIGHT_SCALE) / WEIGHT_SCALE


class RandHetNeuron(cuba.Neuron):
    """SLAYER CUBA neuron with RandHet decays.

    ``fixed_draw`` (a :class:`DecayDraw` for the coming batch) replaces the fresh draw, so the
    torch model can be run with exactly the decays a deployed network uses; ``last_draw``
    holds the decays of the latest forward pass.
    """

    def __init__(self, spec: NeuronSpec, generator: torch.Generator | None = None) -> None:
        super().__init__(**slayer_neuron_params(spec), shared_param=True)
        self.spec = spec
        self.generator = generator
        self.fixed_draw: DecayDraw | None = None
        self.last_draw: DecayDraw | None = None

    def _decays(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, shape = input.shape[0], tuple(input.shape[1:-1])
        if self.fixed_draw is None and self.spec.sigma == 0:
            self.last_draw = None
            return quantize(self.current_decay), quantize(self.voltage_decay)
        draw = self.fixed_draw or draw_layer(self.spec, batch, shape, self.generator)
        if tuple(draw.current.shape) != (batch, *shape):
            raise ValueError(
                f"decay draw has shape {tuple(draw.current.shape)}, expected {(batch, *shape)}"
            )
        self.last_draw = draw
        return (
            draw.current.to(device=input.device, dtype=input.dtype),
            draw.voltage.to(device=input.device, dtype=input.dtype),
        )

    def dynamics(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Current and voltage [B, *shape, T] of the neuron for input drive [B, *shape, T]."""
        if self.shape is None:
            self.shape = input.shape[1:-1]
            self.num_neurons = int(torch.tensor(self.shape).prod().item())
        elif input.shape[1:-1] != self.shape:
            raise ValueError(f"input shape {tuple(input.shape)} does not match {self.shape}")
        du, dv = self._decays(input)
        zeros = torch.zeros(input.shape[:-1], dtype=input.dtype, device=input.device)
        current = leaky_integrator.dynamics(input, du, zeros, self.s_scale)
        voltage = leaky_integrator.dynamics(
            current, dv, zeros, self.s_scale, self.threshold + self.threshold_eps
        )
        return current, voltage


class RandHetDense(cuba_block.Dense):
    """SLAYER dense CUBA block with a RandHet neuron and Loihi's integer synaptic input.

    No SLAYER ``delay_shift``: the deployed network is pipelined so that layer k sees each
    sample one step after layer k-1 without losing the sample's last step.
    """

    def __init__(
        self,
        neuron: NeuronSpec,
        in_features: int,
        out_features: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            slayer_neuron_params(neuron), in_features, out_features,
            weight_norm=False, delay_shift=False,
        )
        self.neuron = RandHetNeuron(neuron, generator)
        self.neuron.shape = torch.Size([out_features])
        self.neuron.num_neurons = out_features
        self.synapse.pre_hook_fx = self.neuron.quantize_8bit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes [B, out, T] for input spikes (binary or graded) [B, in, T]."""
        return self.neuron(floor_to_drive_grid(self.synapse(x)))

    def integer_weight(self) -> torch.Tensor:
        """The deployed weights: even integers in -256..254, shape [out, in]."""
        w = self.synapse.pre_hook_fx(self.synapse.weight, descale=True)
        return w.reshape(w.shape[:2]).detach().round().to(torch.int64)
