"""The RandHet CUBA-LIF neuron and the blocks that carry it (lava-dl SLAYER based).

The neuron keeps SLAYER's conventions (state scale 4096, weight scale 64, SLAYER's surrogate
spike function) and runs Loihi's integer dynamics through :class:`randhet.loihi.LeakyIntegrator`,
which reproduces SLAYER's forward bit for bit; its forward pass runs as one fused call
(:func:`randhet.loihi.cuba_spikes`) where the kernel is built, with the same bits. Its decays
are drawn per neuron (or channel) and per sample by :mod:`randhet.decays`. With
``sigma = 0`` it equals SLAYER's stock CUBA neuron.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F

from randhet._compat import import_slayer_quietly

import_slayer_quietly()

from lava.lib.dl.slayer.block import cuba as cuba_block  # noqa: E402
from lava.lib.dl.slayer.neuron import base  # noqa: E402
from lava.lib.dl.slayer.spike.spike import Spike  # noqa: E402

from randhet import kernel  # noqa: E402
from randhet.decays import (  # noqa: E402
    DecayDraw,
    decays_for,
    draw_eps,
    floor_ste,
    fresh_draw,
    mean_decay_int,
    noise_shape,
    representatives,
    share_by_profile,
)
from randhet.loihi import LeakyIntegrator, cuba_spikes  # noqa: E402
from randhet.spec import DECAY_SCALE, WEIGHT_SCALE, ConvSpec, NeuronSpec  # noqa: E402

SCALE_RHO_MULT = 0.1  # SLAYER's CUBA surrogate constants
TAU_RHO_MULT = 100


def slayer_neuron_params(spec: NeuronSpec) -> dict[str, float]:
    """Keyword arguments of SLAYER's ``cuba.Neuron`` for the mean (sigma = 0) neuron."""
    return {
        "threshold": spec.threshold,
        "current_decay": spec.current_decay,
        "voltage_decay": spec.voltage_decay,
        "tau_grad": spec.tau_grad,
        "scale_grad": spec.scale_grad,
    }


DRIVE_GRID = WEIGHT_SCALE  # the synaptic drive's steps per SLAYER unit on Loihi


def floor_to_drive_grid(z: torch.Tensor) -> torch.Tensor:
    """Round synaptic input down to Loihi's integer grid (1/64 in SLAYER units).

    On Loihi the synapse delivers ``(W_int . x) >> shift``, an integer, which the neuron
    left-shifts by 6. Binary spikes already land on the grid; graded inputs do not.
    """
    return floor_ste(z * DRIVE_GRID) / DRIVE_GRID


class _Quantize8bit(torch.autograd.Function):
    """SLAYER's 8-bit weight hook, ``quantize(w, step).clamp(lo, hi)``, as one autograd node:
    the same values (``round(w / step) * step``, then the clamp) and the same gradient (the
    straight-through rounding, then torch's clamp gradient). Where every weight lies strictly
    inside the bounds (the usual case) that gradient is the incoming one as it is, without
    SLAYER's second node and the clamp's backward ops; otherwise torch's clamp computes it.
    This Python node runs on CUDA and without the kernel extension; ``randhet/csrc/draws.cpp``
    holds the same node in C++ for the CPU."""

    @staticmethod
    def forward(ctx, w, step, lo, hi):  # type: ignore[no-untyped-def, override]
        q = torch.div(w, step).round_().mul_(step)
        low, high = (float(v) for v in torch.aminmax(q)) if q.numel() else (0.0, 0.0)
        inside = low > lo and high < hi  # False for NaN
        ctx.save_for_backward(None if inside else q)
        ctx.lo, ctx.hi = lo, hi
        return q if inside else q.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        (q,) = ctx.saved_tensors
        if q is not None:  # some weight on or past a bound: torch's own clamp gradient
            with torch.enable_grad():
                q = q.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(q.clamp(ctx.lo, ctx.hi), q, grad)
        return grad, None, None, None


class RandHetNeuron(base.Neuron):
    """CUBA-LIF neurons of one layer with RandHet decays.

    Parameters ``mean_current_decay`` / ``mean_voltage_decay`` hold the mean decay fractions
    (learnable with ``spec.learn_decay``). ``fixed_draw`` (a :class:`DecayDraw` for the coming
    batch) replaces the random draw, so the model can run exactly the decays a deployment uses
    or a frozen draw; ``last_draw`` holds the decays of the latest forward pass. Profile
    granularity: the buffer ``profile_binding`` holds every neuron's profile in its core (set by
    :meth:`bind`; the network binds its layers from its seed).
    """

    def __init__(
        self,
        spec: NeuronSpec,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            threshold=spec.threshold, tau_grad=spec.tau_grad, scale_grad=spec.scale_grad,
            p_scale=DECAY_SCALE, w_scale=WEIGHT_SCALE, s_scale=DECAY_SCALE,
            shared_param=True, requires_grad=False,
        )
        self.spec = spec
        self.generator = generator
        self.shape = torch.Size(shape)
        self.num_neurons = int(torch.Size(shape).numel())
        self.threshold_eps = 0.01 / self.s_scale
        self.graded_spike = False
        for name, frac in (("current", spec.current_decay), ("voltage", spec.voltage_decay)):
            mean = torch.tensor([mean_decay_int(frac) / DECAY_SCALE])
            self.register_parameter(
                f"mean_{name}_decay", torch.nn.Parameter(mean, requires_grad=spec.learn_decay)
            )
        if spec.granularity == "profile":
            self.register_buffer("profile_binding",
                                 torch.zeros(self.num_neurons, dtype=torch.int64))
        if spec.resample == "fixed":  # plain heterogeneity: one draw, saved with the weights
            # per neuron; a profile-grouped draw shares it by profile when it is used
            eps_c, eps_v = draw_eps(replace(spec, granularity="neuron"), 1, tuple(shape), 1,
                                    generator)
            self.register_buffer("fixed_eps_current", _or_zero(eps_c, spec, shape))
            self.register_buffer("fixed_eps_voltage", _or_zero(eps_v, spec, shape))
        self.fixed_draw: DecayDraw | None = None
        self.last_draw: DecayDraw | None = None
        self.straight_through = False  # hybrid mode: dS/dV = 1 instead of the surrogate
        self.keep_state = False  # forward keeps (current, voltage) in ``last_state``
        self.last_state: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def surrogate_width(self) -> float:
        """The width of the spike surrogate, in units of the threshold: SLAYER's CUBA
        surrogate is ``exp(-|V - theta| / (tau_rho * 100))``, so a config's ``tau_grad``
        (``tau_rho = tau_grad * theta``) gives a width of ``100 * tau_grad`` thresholds."""
        return self.tau_rho * TAU_RHO_MULT / float(self.threshold)

    @surrogate_width.setter
    def surrogate_width(self, width: float) -> None:
        if not width > 0:
            raise ValueError(f"the surrogate's width must be > 0 thresholds, got {width}")
        self.tau_rho = width * float(self.threshold) / TAU_RHO_MULT

    def quantize_8bit(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """SLAYER's 8-bit weight quantization (:meth:`base.Neuron.quantize_8bit`): weights
        rounded to steps of 2/64 and clamped to -256/64 .. 254/64 (times 64 with
        ``descale``), the same values and gradients, in one autograd node."""
        scale = self.w_scale
        args = (weight, 2 / scale, -256 / scale, 254 / scale)
        ext = kernel.backend("quantize", weight.device, weight.dtype).impl
        q = _Quantize8bit.apply(*args) if ext is None else ext.quantize_8bit(*args)
        return q * scale if descale else q

    def bind(self, binding: torch.Tensor) -> None:
        """Bind every neuron (flat (C, H, W) order) to a decay profile of its core."""
        if binding.shape != (self.num_neurons,):
            raise ValueError(f"a binding of shape {tuple(binding.shape)} for "
                             f"{self.num_neurons} neurons")
        self.profile_binding.copy_(binding.to(torch.int64))

    def clamp(self) -> None:
        with torch.no_grad():
            self.mean_current_decay.clamp_(0, 1)
            self.mean_voltage_decay.clamp_(0, 1)

    def _integer_mean(self, p: torch.Tensor) -> int:
        return int(torch.round(p.detach().clamp(0, 1) * DECAY_SCALE).item())

    @property
    def cx_current_decay(self) -> int:
        """Mean current decay on the 12-bit grid (netx ``iDecay``)."""
        return self._integer_mean(self.mean_current_decay)

    @property
    def cx_voltage_decay(self) -> int:
        """Mean voltage decay on the 12-bit grid (netx ``vDecay``)."""
        return self._integer_mean(self.mean_voltage_decay)

    @property
    def device_params(self) -> dict[str, object]:
        """The netx neuron description (mean decays; the draw is in randhet's metadata)."""
        return {
            "type": "CUBA",
            "iDecay": self.cx_current_decay,
            "vDecay": self.cx_voltage_decay,
            "vThMant": self.v_th_mant,
            "refDelay": 1,
            "gradedSpike": False,
        }

    def draw(self, batch: int, steps: int) -> DecayDraw:
        """The decays for a batch: fixed, frozen or freshly drawn (differentiable in the means)."""
        if self.fixed_draw is not None:
            return self.fixed_draw
        spec = self.spec
        binding = self.profile_binding if spec.granularity == "profile" else None
        if spec.resample == "fixed":  # [1, *noise]: the same decays for every sample
            eps_c = self.fixed_eps_current[None] if spec.randomizes_current else None
            eps_v = self.fixed_eps_voltage[None] if spec.randomizes_voltage else None
            if binding is not None:
                rep = representatives(binding, spec.core_size, spec.profiles)
                shape = tuple(self.shape)
                eps_c = None if eps_c is None else share_by_profile(eps_c, shape, rep)
                eps_v = None if eps_v is None else share_by_profile(eps_v, shape, rep)
        elif spec.sigma > 0:
            return fresh_draw(spec, self.mean_current_decay, self.mean_voltage_decay, batch,
                              tuple(self.shape), steps, self.generator, binding)
        else:
            eps_c = eps_v = None
        return decays_for(spec, self.mean_current_decay, self.mean_voltage_decay, eps_c, eps_v)

    def _decays(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decays (du, dv) for input drive [B, *shape, T], drawn (or fixed) now and kept
        in ``last_draw``."""
        if input.shape[1:-1] != self.shape:
            raise ValueError(f"input shape {tuple(input.shape)} does not match {self.shape}")
        draw = self.draw(input.shape[0], input.shape[-1])
        self.last_draw = DecayDraw(_detached(draw.current), _detached(draw.voltage))
        return _as_decay(draw.current, input), _as_decay(draw.voltage, input)

    def dynamics(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Current and voltage [B, *shape, T] of the neurons for input drive [B, *shape, T]."""
        du, dv = self._decays(input)
        current = LeakyIntegrator.apply(input, du, None)
        voltage = LeakyIntegrator.apply(current, dv, self.threshold + self.threshold_eps)
        return current, voltage

    def spike(self, voltage: torch.Tensor) -> torch.Tensor:
        """SLAYER's CUBA spike function on the pre-reset voltage.

        Backward: SLAYER's surrogate (STBP), or with ``straight_through`` (hybrid mode) the
        straight-through estimator dS/dV = 1 (identity, no surrogate shape); the forward
        spikes are the same bits either way.
        """
        if self.straight_through:
            s = Spike.apply(
                voltage.detach(), self.threshold + self.threshold_eps,
                self.tau_rho * TAU_RHO_MULT, self.scale_rho * SCALE_RHO_MULT, False, None, 1,
            )
            return s + (voltage - voltage.detach())
        return Spike.apply(
            voltage, self.threshold + self.threshold_eps, self.tau_rho * TAU_RHO_MULT,
            self.scale_rho * SCALE_RHO_MULT, False, None, 1,
        )

    def forward(self, input: torch.Tensor, on_grid: bool = False) -> torch.Tensor:
        """Spikes [B, *shape, T] for input drive [B, *shape, T] (``on_grid``: first floored
        to Loihi's drive grid, :func:`floor_to_drive_grid`): :meth:`dynamics`, then
        :meth:`spike`, in one fused call where the kernel applies (the same bits). With
        ``keep_state`` the current and voltage [B, *shape, T] (the voltage after each step's
        reset) are kept in ``last_state``, with their gradient history."""
        du, dv = self._decays(input)
        threshold = self.threshold + self.threshold_eps
        if self.keep_state:  # the state as well as the spikes: the unfused path, same bits
            if on_grid:
                input = floor_to_drive_grid(input)
            current = LeakyIntegrator.apply(input, du, None)
            voltage = LeakyIntegrator.apply(current, dv, threshold)
            self.last_state = (current, voltage)
            return self.spike(voltage)
        surrogate = (None if self.straight_through
                     else (self.tau_rho * TAU_RHO_MULT, self.scale_rho * SCALE_RHO_MULT))
        spikes = cuba_spikes(input, du, dv, threshold, surrogate,
                             DRIVE_GRID if on_grid else 0)
        if spikes is not None:
            return spikes
        if on_grid:
            input = floor_to_drive_grid(input)
        current = LeakyIntegrator.apply(input, du, None)
        return self.spike(LeakyIntegrator.apply(current, dv, threshold))


def _or_zero(eps: torch.Tensor | None, spec: NeuronSpec, shape: tuple[int, ...]) -> torch.Tensor:
    if eps is not None:
        return eps[0]
    return torch.zeros(noise_shape(spec, shape), dtype=torch.float64)


def _over_frames(x: torch.Tensor,
                 synapse: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``synapse`` (on frames [F, *in]) over all B x T frames of ``x`` [B, *in, T] at once,
    its output stored time major ([T, B, *out] viewed as [B, *out, T]: the layout the kernel
    scans fastest and the next synapse reads without a copy). An input that repeats over time
    (direct encoding, stride 0) goes through once per sample."""
    if x.stride(-1) == 0:
        z = synapse(x[..., 0])
        return z.unsqueeze(-1).expand(*z.shape, x.shape[-1])
    steps, batch = x.shape[-1], x.shape[0]
    z = synapse(x.movedim(-1, 0).reshape(steps * batch, *x.shape[1:-1]))
    return z.reshape(steps, batch, *z.shape[1:]).movedim(0, -1)


def _detached(t: torch.Tensor) -> torch.Tensor:
    """``t`` without its gradient history (itself where it has none)."""
    return t.detach() if t.requires_grad else t


def _as_decay(d: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Put decays on the input's device and dtype; a [1] mean stays a scalar decay."""
    d = d.to(device=like.device, dtype=like.dtype)
    if d.dim() > 1 and d.dim() < like.dim() - 1:
        raise ValueError(f"decays of shape {tuple(d.shape)} for input {tuple(like.shape)}")
    return d


class _OnTheGrid:
    """What the dense and conv blocks share: the synapse's drive floored to Loihi's integer
    grid (unless ``integer_drive`` is off: the float model), then the RandHet neurons."""

    synapse: torch.nn.Module
    neuron: RandHetNeuron
    integer_drive: bool
    weight_dims: int  # 2: dense [out, in]; 4: conv [out, in/groups, k, k]

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """The synapse's output [B, *out, T] (SLAYER units) for input [B, *in, T]."""
        return self.synapse(x)

    def _hooked_weight(self) -> torch.Tensor:
        """The synapse's weight through its 8-bit hook, as SLAYER's forward uses it."""
        syn = self.synapse
        return syn.weight if syn.pre_hook_fx is None else syn.pre_hook_fx(syn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes [B, *out, T] for input spikes (binary or graded) [B, *in, T]."""
        return self.neuron(self.drive(x), on_grid=self.integer_drive)

    def integer_weight(self) -> torch.Tensor:
        """The deployed weights: even integers in -256..254, [out, in] or
        [out, in/groups, k, k]."""
        w = self.synapse.pre_hook_fx(self.synapse.weight, descale=True)
        return w.reshape(w.shape[:self.weight_dims]).detach().round().to(torch.int64)


class RandHetDense(_OnTheGrid, cuba_block.Dense):
    """SLAYER dense CUBA block with a RandHet neuron and Loihi's integer synaptic input.

    No SLAYER ``delay_shift``: the deployed network is pipelined so that layer k sees each
    sample one step after layer k-1 without losing the sample's last step.
    """

    weight_dims = 2

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
        self.neuron = RandHetNeuron(neuron, (out_features,), generator)
        self.synapse.pre_hook_fx = self.neuron.quantize_8bit
        self.integer_drive = True

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """SLAYER's dense synapse (its weights through its 8-bit hook) as one matmul over all
        B x T inputs, the output stored time major ([T, B, out] viewed as [B, out, T]: the
        layout the kernel scans fastest and the next layer's matmul reads without a copy).
        An input that repeats over time (direct encoding, stride 0) is multiplied once.
        SLAYER's 1x1x1 convolution gives the same bits wherever the sums are exact (weights on
        the 1/64 grid times binary spikes, or graded inputs on a 1/2**bits grid, summing to
        under 2**24 grid steps, as in the digits and MNIST layouts); beyond that both round,
        in their own orders."""
        if x.dim() != 3:
            raise ValueError(f"dense input must be [B, in, T], got {tuple(x.shape)}")
        w = self._hooked_weight()
        w = w.reshape(w.shape[0], -1)
        return _over_frames(x, lambda frames: F.linear(frames, w, self.synapse.bias))


class RandHetConv(_OnTheGrid, cuba_block.Conv):
    """SLAYER convolution CUBA block with a RandHet neuron ([B, C, H, W, T] tensors).

    A pooling layer (``spec.pool``) is a depthwise convolution with stride = kernel and fixed,
    equal weights ``pool_weight``: sum pooling that netx and Lava carry as a convolution.
    """

    weight_dims = 4

    def __init__(
        self, neuron: NeuronSpec, spec: ConvSpec, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(
            slayer_neuron_params(neuron), spec.in_shape[0], spec.out_channels, spec.kernel,
            stride=spec.stride, padding=spec.padding, groups=spec.groups,
            weight_norm=False, delay_shift=False,
        )
        self.spec = spec
        self.neuron = RandHetNeuron(neuron, spec.out_shape, generator)
        self.synapse.pre_hook_fx = self.neuron.quantize_8bit
        self.integer_drive = True
        if spec.pool:
            with torch.no_grad():
                self.synapse.weight.fill_(spec.pool_weight)
            self.synapse.weight.requires_grad_(False)

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """SLAYER's convolution synapse (its weights through its 8-bit hook) as one 2-d
        convolution over all B x T inputs (the extension's convolution node where it applies,
        :func:`randhet.kernel.conv2d`, else torch's), the output stored time major ([T, B, C,
        H, W] viewed as [B, C, H, W, T]), as :meth:`RandHetDense.drive` does for the dense
        synapse: the layout the kernel scans fastest and the next convolution reads without a
        copy.
        An input that repeats over time (direct encoding, stride 0) is convolved once.
        SLAYER's ``conv3d`` with its (k, k, 1) kernel gives the same bits wherever the sums
        are exact (weights on the 1/64 grid times binary spikes, or graded inputs on a
        1/2**bits grid, summing to under 2**24 grid steps, as in the digits and MNIST
        layouts); beyond that both round, in their own orders."""
        if x.dim() != 5:
            raise ValueError(f"conv input must be [B, C, H, W, T], got {tuple(x.shape)}")
        syn = self.synapse
        w = self._hooked_weight()[..., 0]  # SLAYER's (k, k, 1) kernel as a 2-d one
        args = (syn.bias, syn.stride[:2], syn.padding[:2], syn.dilation[:2], syn.groups)

        def conv(frames: torch.Tensor) -> torch.Tensor:
            z = kernel.conv2d(frames, w, *args)  # the extension's node, where it applies
            return F.conv2d(frames, w, *args) if z is None else z
        return _over_frames(x, conv)

