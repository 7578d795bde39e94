"""Loihi's integer CUBA-LIF dynamics, written once.

Integer units (what Loihi and Lava's fixed-point LIF hold): state ``U, V`` (24-bit), decays
``d`` in 0..4096 (the state keeps ``(4096 - d) / 4096`` per step), synaptic drive ``a << 6``
(``a`` = the integer sum of weights times spikes after the weight exponent), threshold
``vThMant << 6``. One step::

    U[t] = wrap24(sgn * (|U[t-1] * (4096 - du)| >> 12) + (a[t] << 6))
    V[t] = sat24(sgn * (|V[t-1] * (4096 - dv)| >> 12) + U[t] + (b << bias_exp))
    s[t] = V[t] > vThMant << 6;   V[t] = 0 where s[t]

The training neuron (:mod:`randhet.models.neuron`) runs the same integers through
:class:`LeakyIntegrator` without the 24-bit wrap/saturation, exactly as SLAYER does, with a
correct gradient for the decays; the emulator and the profiler run it with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from randhet import kernel

DECAY_UNITY = 1 << 12  # decay fraction 1.0
DECAY_SHIFT = 12
ACT_SHIFT = 6  # synaptic input is left-shifted by 6 (MSB alignment)
VTH_SHIFT = 6  # threshold mantissa is left-shifted by 6
STATE_BITS = 24
MAX_STATE = 1 << (STATE_BITS - 1)


@dataclass(frozen=True)
class Datapath:
    """How the integer datapath overflows. The defaults are Lava's CPU model.

    ``synaptic_input_bits``: the signed width the summed synaptic input ``q0 = a << 6`` wraps
    to each step (None: unbounded); ``current_wrap``: ``"lava"`` (one wrap into
    ``(-2**23, 2**23]``, as Lava's fixed-point LIF) or ``"twos_complement"`` (into
    ``[-2**23, 2**23 - 1]``, as a 24-bit register)."""

    synaptic_input_bits: int | None = None
    current_wrap: str = "lava"

    @property
    def is_lava(self) -> bool:
        return self.synaptic_input_bits is None and self.current_wrap == "lava"


LAVA = Datapath()


def wrap_signed(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's-complement wrap of int64 ``x`` to ``bits`` signed bits: [-2**(bits-1),
    2**(bits-1) - 1], however far out of range."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def wrap_current(u: torch.Tensor, twos_complement: bool = False) -> torch.Tensor:
    """The 24-bit wrap of the current: Lava's one-sided wrap (``-2**23`` becomes ``+2**23``),
    or the register's two's complement."""
    if twos_complement:
        return wrap_signed(u, STATE_BITS)
    u = torch.where(u > MAX_STATE, u - 2 * MAX_STATE, u)
    return torch.where(u <= -MAX_STATE, u + 2 * MAX_STATE, u)


def saturate_voltage(v: torch.Tensor) -> torch.Tensor:
    """Loihi's 24-bit saturation of the voltage."""
    return v.clamp(-(MAX_STATE - 1), MAX_STATE - 1)


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """[.., T] -> contiguous [T, ..] (each step's slice is contiguous: the loop is faster)."""
    return x.movedim(-1, 0).contiguous()


def integrate(
    drive: torch.Tensor,
    d: torch.Tensor,
    threshold: float | None = None,
    clip: str | None = None,
    keep_post: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run one leaky integrator over time.

    ``drive`` [.., T] int64 input added each step; ``d`` int64 decays [..] (broadcast) or
    [.., T] (one per step); ``threshold``: spike where the state is ``>= threshold`` and reset
    it to 0 (None: no spikes); ``clip``: ``"wrap"`` (current, Lava's wrap), ``"wrap_twos"``
    (current, two's complement), ``"saturate"`` (voltage) or None (SLAYER). Returns the state
    before reset [.., T] and, if ``keep_post``, after reset. Runs the fused kernel
    (:mod:`randhet.kernel`) where it applies, else the per-step loop: the same integers.
    """
    steps = drive.shape[-1]
    per_step = kernel.has_steps(d, drive)
    keep = DECAY_UNITY - d
    fused = kernel.integrate(drive, keep, threshold, clip, keep_post, per_step)
    if fused is not None:
        return fused
    keep = _time_major(keep) if per_step else keep
    x = _time_major(drive)
    pre = torch.empty_like(x)
    post = torch.empty_like(x) if keep_post else None
    state = torch.zeros_like(x[0])
    for t in range(steps):
        prod = state * (keep[t] if per_step else keep)
        state = torch.sign(prod) * (prod.abs() >> DECAY_SHIFT) + x[t]
        if clip in ("wrap", "wrap_twos"):
            state = wrap_current(state, clip == "wrap_twos")
        elif clip == "saturate":
            state = saturate_voltage(state)
        pre[t] = state
        if threshold is not None:
            state = state * (state < threshold)
        if post is not None:
            post[t] = state
    return pre.movedim(0, -1), None if post is None else post.movedim(0, -1)


def cuba(
    drive: torch.Tensor, du: torch.Tensor, dv: torch.Tensor, vth_mant: int, hardware: bool = True,
    datapath: Datapath = LAVA, bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer CUBA neurons: ``drive`` [.., T] is ``a << 6`` (int64); returns U, V (before
    reset) and spikes (bool), each [.., T]. ``hardware`` applies the 24-bit wrap/saturation and
    the ``datapath``'s overflow rules. The strict threshold ``V > vth`` is ``V >= vth + 1`` on
    integers. ``bias`` (int64, broadcast to ``drive``): ``b << bias_exp``, added to V every
    step after U."""
    vth = vth_mant << VTH_SHIFT
    if bias is None:
        fused = kernel.cuba(drive, DECAY_UNITY - du, DECAY_UNITY - dv, vth,
                            (("wrap_twos" if datapath.current_wrap == "twos_complement"
                              else "wrap") if hardware else None),
                            datapath.synaptic_input_bits if hardware else None, hardware)
        if fused is not None:
            return fused
    wrap = None
    if hardware:
        if datapath.synaptic_input_bits is not None:
            drive = wrap_signed(drive, datapath.synaptic_input_bits)
        wrap = "wrap_twos" if datapath.current_wrap == "twos_complement" else "wrap"
    u, _ = integrate(drive, du, None, wrap, keep_post=False)
    v, _ = integrate(u if bias is None else u + bias, dv, vth + 1,
                     "saturate" if hardware else None, keep_post=False)
    return u, v, v > vth


class LeakyIntegrator(torch.autograd.Function):
    """SLAYER's integer leaky integrator (bit-identical forward) with a correct decay gradient.

    Forward, in SLAYER units (state / 4096): ``y[t] = decay(y[t-1]) + x[t]`` on the integer grid,
    with reset to 0 where ``y >= threshold``. Backward: the input gradient is SLAYER's
    (``g[t] = a[t+1] g[t+1] + dL/dy[t]``, reset ignored, ``a = 1 - d/4096``); the decay gradient
    is ``dL/dd[t] = -g[t] * y_post[t-1] / 4096`` per integer decay unit. SLAYER's own decay
    gradient has the opposite sign and a 4096x scale.
    """

    @staticmethod
    def forward(ctx, x, d, threshold):  # type: ignore[no-untyped-def, override]
        scale = DECAY_UNITY
        th = None if threshold is None else threshold * scale
        need_post = ctx.needs_input_grad[1]
        per_step = kernel.has_steps(d, x)
        fused = kernel.leaky_forward(x, DECAY_UNITY - d.detach().to(torch.int64), th, need_post,
                                     per_step)
        if fused is not None:
            y, post = fused
        else:
            drive = (scale * x).to(torch.int64)
            pre, post = integrate(drive, d.detach().to(torch.int64), th, keep_post=need_post)
            y = pre / scale
        ctx.save_for_backward(post if need_post else y[..., :0], d)
        ctx.decay_per_step = per_step
        return y

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[no-untyped-def, override]
        post, d = ctx.saved_tensors
        a = 1 - d / DECAY_UNITY
        need_d = ctx.needs_input_grad[1]
        fused = kernel.integrate_backward(a, grad_out, ctx.decay_per_step,
                                          post if need_d else None)
        if fused is not None:
            grad_in, terms = fused
        else:
            grad_in = _input_grad_loop(a, grad_out, ctx.decay_per_step)
            terms = _decay_terms(grad_in, post) if need_d else None
        grad_d = None
        if terms is not None:
            if not ctx.decay_per_step:
                terms = terms.sum(-1)
            grad_d = terms.sum_to_size(d.shape)
        return grad_in, grad_d, None


def cuba_spikes(
    x: torch.Tensor, du: torch.Tensor, dv: torch.Tensor, threshold: float,
    surrogate: tuple[float, float] | None, grid: int = 0,
) -> torch.Tensor | None:
    """The training neuron's spikes [.., T] in one call, or None where the fused kernel does
    not apply (the caller then runs :class:`LeakyIntegrator` twice and its spike function).

    The same bits, forward and backward, as ``LeakyIntegrator`` on the current (``du``), then
    on the voltage (``dv``, reset at ``threshold``), then SLAYER's spike function ``V >=
    threshold`` with its surrogate gradient ``scale / 2 / tau * exp(-|V - threshold| / tau)``
    (``surrogate = (tau, scale)``; None: the straight-through estimator dS/dV = 1). ``x``:
    the drive [.., T] in SLAYER units, first floored to ``1 / grid`` where ``grid`` > 0, a
    power of two (``floor(x * grid) / grid`` with a straight-through gradient, rounded as
    torch rounds those ops: Loihi's integer synaptic input); ``du``,
    ``dv``: integer-valued decays [..] (broadcast) or [.., T] (per step), differentiable.
    """
    k = None if grid < 0 or grid & (grid - 1) else kernel.neuron_kernel(x, du, dv, threshold)
    if k is None:
        return None
    opts = kernel.neuron_options(threshold, surrogate, grid, du, x)
    if not (torch.is_grad_enabled() and (x.requires_grad or du.requires_grad
                                         or dv.requires_grad)):
        # no backward to come: the spikes alone, nothing kept for a gradient
        spikes, _, _ = kernel.neuron_forward(k, x, du, dv, opts, keep_post=False, keep_y=False)
        return spikes
    node = kernel.neuron_node(k, x, du, dv, opts)
    if node is not None:
        return node
    return _CubaSpikes.apply(x, du, dv, opts, k)


class _CubaSpikes(torch.autograd.Function):
    """:func:`cuba_spikes` on the Triton kernel: its forward and backward, the gradients
    reduced to the decays' shapes (the C++ extension runs the same steps as one node of its
    own, :func:`randhet.kernel.neuron_node`)."""

    @staticmethod
    def forward(ctx, x, du, dv, opts, k):  # type: ignore[no-untyped-def, override]
        need_post = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        spikes, yv, post = kernel.neuron_forward(k, x, du.detach(), dv.detach(), opts, need_post)
        ctx.save_for_backward(yv, du, dv, *(post or ()))
        ctx.opts, ctx.kernel = opts, k
        return spikes

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        yv, du, dv, *post = ctx.saved_tensors
        grad_x, terms_u, terms_v = kernel.neuron_backward(
            ctx.kernel, grad, yv, du.detach(), dv.detach(), ctx.opts, tuple(post) or None)
        grads = []
        for d, terms, need in zip((du, dv), (terms_u, terms_v), ctx.needs_input_grad[1:3],
                                  strict=True):
            if terms is None or not need:
                grads.append(None)
                continue
            grads.append((terms if kernel.has_steps(d, grad) else terms.sum(-1))
                         .sum_to_size(d.shape))
        return grad_x, *grads, None, None


def _decay_terms(grad_in: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """Per step, ``dL/dd[t] = -g[t] * y_post[t-1] / 4096`` [.., T] (the kernel's fallback)."""
    # y_post[t-1] in SLAYER units, as floats (an int64 buffer would truncate the states below
    # one unit, where most of them are, and lose the gradient)
    prev = torch.zeros_like(post, dtype=grad_in.dtype)
    prev[..., 1:] = post[..., :-1].to(grad_in.dtype) / DECAY_UNITY
    return -grad_in * prev / DECAY_UNITY


def _input_grad_loop(a: torch.Tensor, grad_out: torch.Tensor, per_step: bool) -> torch.Tensor:
    """``g[t] = a[t+1] g[t+1] + dL/dy[t]`` step by step, [.., T] (the kernel's fallback)."""
    if per_step:
        a = _time_major(a)
    steps = grad_out.shape[-1]
    g_out = _time_major(grad_out)
    g = torch.empty_like(g_out)
    g[steps - 1] = g_out[steps - 1]
    for t in range(steps - 2, -1, -1):
        g[t] = (a[t + 1] if per_step else a) * g[t + 1] + g_out[t]
    return g.movedim(0, -1)
