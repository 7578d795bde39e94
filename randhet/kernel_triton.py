"""The training neuron's fused kernel on CUDA, in Triton: ``randhet/csrc/cuba.cpp``'s
``neuron_forward`` and ``neuron_backward``, the same signatures and the same bits.

Each program scans ``BLOCK`` rows (batch times neurons) over all time steps, one step per
iteration, as the C++ does for a chunk. The arithmetic is the C++'s, operation for operation:
the decay ``sign(p) * (|p| >> 12)`` for ``p = state * keep`` in int64, float-to-int64
truncation, int64-to-float rounding to nearest, and no fused multiply-adds (launched with
``enable_fp_fusion=False``: ``a * g + g_out`` rounds twice, as torch's two ops do). Float
parameters reach the kernel as a float64 tensor (a Python float argument would be float32)
and are rounded to the computing dtype inside, as the C++ casts them. The surrogate's
exponential runs as torch's ``exp`` on the device before the scan, as on the CPU.

With ``TRITON_INTERPRET=1`` in the environment before Triton is first imported, the same
kernels run in Triton's interpreter on CPU tensors (numpy underneath): that is how the tests
check them against the C++ kernel on machines without a GPU.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from randhet.spec import DECAY_SCALE as _UNITY  # decay fraction 1.0

BLOCK = 128  # rows per program


# MODE: kernel.py's threshold modes (0 none, 1 int64, 2 float32, 3 float64 comparison)
@triton.jit
def neuron_forward_kernel(
    x_ptr, xr, xs, ku_ptr, ur, us, kv_ptr, vr, vs, spikes_ptr, sr, ss, yv_ptr, pu_ptr, pv_ptr,
    params_ptr, th_int, rows, steps,
    MODE: tl.constexpr, KEEP_POST: tl.constexpr, KEEP_Y: tl.constexpr, HAS_GRID: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # params (float64): reset threshold (float modes), spike threshold, grid
    rows_here = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows_here < rows
    r = rows_here.to(tl.int64)
    x_t = x_ptr.dtype.element_ty
    y_t = yv_ptr.dtype.element_ty
    th_reset = tl.load(params_ptr)
    th_spike = tl.load(params_ptr + 1).to(y_t)
    grid = tl.load(params_ptr + 2).to(x_t)
    x_unity = tl.full([BLOCK], 4096.0, x_t)
    y_unity = tl.full([BLOCK], 4096.0, y_t)
    y_inv = tl.full([BLOCK], 1.0 / 4096.0, y_t)
    u_state = tl.zeros([BLOCK], tl.int64)
    v_state = tl.zeros([BLOCK], tl.int64)
    for step in range(0, steps):
        t = tl.zeros([BLOCK], tl.int64) + step  # int64 offsets: no 32-bit overflow
        drive = tl.load(x_ptr + r * xr + t * xs, mask=live, other=0.0)
        if HAS_GRID:
            drive = tl.floor(drive * grid) / grid
        ku = tl.load(ku_ptr + r * ur + t * us, mask=live, other=0)
        kv = tl.load(kv_ptr + r * vr + t * vs, mask=live, other=0)
        p = u_state * ku
        neg = p >> 63
        u = ((((p ^ neg) - neg) >> 12) ^ neg) - neg + (drive * x_unity).to(tl.int64)
        yu = u.to(y_t) * y_inv
        p = v_state * kv
        neg = p >> 63
        v = ((((p ^ neg) - neg) >> 12) ^ neg) - neg + (yu * y_unity).to(tl.int64)
        y = v.to(y_t) * y_inv
        if KEEP_Y:
            tl.store(yv_ptr + t * rows + r, y, mask=live)
        spike = tl.where(y >= th_spike, 1.0, 0.0).to(y_t)
        tl.store(spikes_ptr + r * sr + t * ss, spike, mask=live)
        if MODE == 1:
            below = v < th_int
        elif MODE == 2:
            below = v.to(tl.float32) < th_reset.to(tl.float32)
        elif MODE == 3:
            below = v.to(tl.float64) < th_reset
        else:
            below = v == v
        v = tl.where(below, v, 0)
        if KEEP_POST:  # as the decay gradient reads them: y_t(state) / 4096
            tl.store(pu_ptr + t * rows + r, yu, mask=live)
            tl.store(pv_ptr + t * rows + r, v.to(y_t) * y_inv, mask=live)
        u_state = u
        v_state = v


@triton.jit
def neuron_backward_kernel(
    gs_ptr, gr, gt, e_ptr, au_ptr, aur, aus, av_ptr, avr, avs, pu_ptr, pv_ptr, gx_ptr,
    ddu_ptr, ddv_ptr, params_ptr, rows, steps,
    SURROGATE: tl.constexpr, TERMS: tl.constexpr, HAS_GRID: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # params (float64): the surrogate's k = scale / 2 / tau (already rounded to g_t),
    # the grid, 1 / grid
    rows_here = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows_here < rows
    r = rows_here.to(tl.int64)
    g_t = gx_ptr.dtype.element_ty
    acc_t = au_ptr.dtype.element_ty
    k = tl.load(params_ptr).to(g_t)
    grid = tl.load(params_ptr + 1).to(g_t)
    grid_inverse = tl.load(params_ptr + 2).to(g_t)
    inv_unity = tl.full([BLOCK], 1.0 / 4096.0, g_t)
    gv = tl.zeros([BLOCK], g_t)
    gu = tl.zeros([BLOCK], g_t)
    for i in range(0, steps):
        t = tl.zeros([BLOCK], tl.int64) + (steps - 1 - i)  # int64 offsets
        gin = tl.load(gs_ptr + r * gr + t * gt, mask=live, other=0.0)
        if SURROGATE:
            e = tl.load(e_ptr + t * rows + r, mask=live, other=0.0)
            gin = (k * e) * gin
        last = t == steps - 1
        au = tl.load(au_ptr + r * aur + (t + 1) * aus, mask=live & ~last, other=0.0)
        av = tl.load(av_ptr + r * avr + (t + 1) * avs, mask=live & ~last, other=0.0)
        gv = tl.where(last, gin, (av * gv.to(acc_t) + gin.to(acc_t)).to(g_t))
        gu = tl.where(last, gin, (au * gu.to(acc_t) + gv.to(acc_t)).to(g_t))
        if HAS_GRID:
            out = (gu * grid_inverse) * grid
        else:
            out = gu
        tl.store(gx_ptr + r * gr + t * gt, out, mask=live)
        if TERMS:
            earlier = live & (t > 0)
            pu = tl.load(pu_ptr + (t - 1) * rows + r, mask=earlier, other=0.0)
            pv = tl.load(pv_ptr + (t - 1) * rows + r, mask=earlier, other=0.0)
            tl.store(ddu_ptr + t * rows + r, (-gu * pu) * inv_unity, mask=live)
            tl.store(ddv_ptr + t * rows + r, (-gv * pv) * inv_unity, mask=live)


def _strides(time_major: bool, rows: int, steps: int) -> tuple[int, int]:
    """(row stride, step stride) of a 2-d [T, N] (time major) or [N, T] tensor."""
    return (1, rows) if time_major else (steps, 1)


def _keep_strides(per_step: bool, time_major: bool, rows: int, steps: int) -> tuple[int, int]:
    return _strides(time_major, rows, steps) if per_step else (1, 0)


class Kernel:
    """``cuba.cpp``'s ``neuron_forward`` and ``neuron_backward`` (same arguments, same
    results) on the device the tensors are on."""

    @staticmethod
    def _launch(fn: Any, rows: int, *args: Any, **meta: Any) -> None:
        fn[(triton.cdiv(rows, BLOCK),)](*args, BLOCK=BLOCK, enable_fp_fusion=False, **meta)

    def neuron_forward(self, x: torch.Tensor, x_time_major: bool, d_u: torch.Tensor,
                       u_steps: bool, d_v: torch.Tensor, v_steps: bool, th_mode: int,
                       th_int: int, th_float: float, th_spike: float, grid: int,
                       keep_post: bool, keep_y: bool, y_double: bool) -> list[torch.Tensor]:
        """Spikes (laid out as ``x``; [T, N] for an ``x`` time major with step stride 0), yv
        [T, N] (empty without ``keep_y``) and, with ``keep_post``, post_u, post_v.
        ``d_u``, ``d_v``: the decays (floating point); the scans keep ``4096 - int64(d)``."""
        repeated = x.dim() == 2 and x_time_major and x.stride() == (0, 1)
        if x.dim() != 2 or not (x.is_contiguous() or repeated):
            raise ValueError("x: 2-d, contiguous or time major with step stride 0")
        keep_u, keep_v = (_UNITY - d.to(torch.int64) for d in (d_u, d_v))
        if grid < 0 or grid & (grid - 1):
            raise ValueError("grid: 0 or a power of two")
        rows, steps = (x.shape[1], x.shape[0]) if x_time_major else x.shape
        floats = x.new_empty(0, dtype=torch.float64 if y_double else torch.float32)
        spikes = (x.new_empty((steps, rows), dtype=floats.dtype) if repeated
                  else torch.empty_like(x, dtype=floats.dtype))
        yv = x.new_empty((steps, rows) if keep_y else (1,), dtype=floats.dtype)
        post = (steps, rows) if keep_post else (1,)
        post_u = x.new_empty(post, dtype=floats.dtype)
        post_v = x.new_empty(post, dtype=floats.dtype)
        if rows and steps:
            params = torch.tensor([th_float, th_spike, float(grid)], dtype=torch.float64,
                                  device=x.device)
            sr, ss = _strides(x_time_major, rows, steps)  # the spikes'
            xr, xs = x.stride(1), x.stride(0)
            if not x_time_major:
                xr, xs = xs, xr
            self._launch(neuron_forward_kernel, rows, x, xr, xs,
                         keep_u, *_keep_strides(u_steps, x_time_major, rows, steps),
                         keep_v, *_keep_strides(v_steps, x_time_major, rows, steps),
                         spikes, sr, ss, yv, post_u, post_v, params, th_int, rows, steps,
                         MODE=th_mode, KEEP_POST=keep_post, KEEP_Y=keep_y, HAS_GRID=grid > 0)
        if not keep_y:
            yv = x.new_empty(0, dtype=floats.dtype)
        if not keep_post:
            post_u, post_v = x.new_empty(0, dtype=floats.dtype), x.new_empty(0, dtype=floats.dtype)
        return [spikes, yv, post_u, post_v]

    def neuron_backward(self, g_s: torch.Tensor, g_time_major: bool, yv: torch.Tensor,
                        surrogate: bool, th: float, tau: float, scale: float, grid: int,
                        d_u: torch.Tensor, u_steps: bool, d_v: torch.Tensor, v_steps: bool,
                        acc_double: bool, post_u: torch.Tensor, post_v: torch.Tensor,
                        ) -> list[torch.Tensor]:
        """dL/dx (laid out as ``g_s``) and the decay terms of u and v ([T, N], or empty);
        the gains ``1 - d / 4096`` in float64 (``acc_double``) or float32, as ``cuba.cpp``."""
        if g_s.dim() != 2 or not g_s.is_contiguous():
            raise ValueError("g_s: contiguous, 2-d")
        acc = torch.float64 if acc_double else torch.float32
        a_u, a_v = ((1 - d / _UNITY).to(acc) for d in (d_u, d_v))
        rows, steps = (g_s.shape[1], g_s.shape[0]) if g_time_major else g_s.shape
        terms = post_u.numel() > 0
        gx = torch.empty_like(g_s)
        ddu = g_s.new_empty((steps, rows) if terms else (0,))
        ddv = g_s.new_empty((steps, rows) if terms else (0,))
        if not (rows and steps):
            return [gx, ddu, ddv]
        g_t = g_s.dtype
        e = g_s.new_empty(1)
        k = 0.0
        if surrogate:  # as cuba.cpp: threshold, tau and scale in g_t, then torch's exp
            th_g, tau_g, scale_g = (torch.tensor(v, dtype=g_t) for v in (th, tau, scale))
            k = float((scale_g / 2) / tau_g)
            e = ((yv - th_g.to(yv.device)).abs_().neg_() / tau_g.to(yv.device)).exp_()
        inverse = 1.0 / grid if grid > 0 else 0.0
        params = torch.tensor([k, float(grid), inverse], dtype=torch.float64,
                              device=g_s.device)
        gr, gt = _strides(g_time_major, rows, steps)
        pu = post_u if terms else g_s.new_empty(1)
        pv = post_v if terms else g_s.new_empty(1)
        self._launch(neuron_backward_kernel, rows, g_s, gr, gt, e,
                     a_u, *_keep_strides(u_steps, g_time_major, rows, steps),
                     a_v, *_keep_strides(v_steps, g_time_major, rows, steps),
                     pu, pv, gx, ddu if terms else gx, ddv if terms else gx, params, rows,
                     steps, SURROGATE=surrogate, TERMS=terms, HAS_GRID=grid > 0)
        return [gx, ddu, ddv]
