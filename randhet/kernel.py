"""The fused integer CUBA kernel: the whole time loop of a layer's neurons in one call.

It runs the integrators of :mod:`randhet.loihi` (one scan, or a CUBA layer's two on the
integer datapath) and the training neuron whole (:func:`randhet.loihi.cuba_spikes`: the drive
floored to Loihi's grid, both integrators and SLAYER's spike function, forward and backward).

``randhet/csrc/cuba.cpp`` (with ``draws.cpp``: RandHet's decay draw for :mod:`randhet.decays`
and the 8-bit weight hook of :mod:`randhet.models.neuron`, one call each; and ``conv.cpp``: a
convolution synapse's conv2d, :func:`conv2d`) is built with
``torch.utils.cpp_extension`` the first time it is needed (cached under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) and runs on CPU tensors,
parallel over the batch times the neurons. On CUDA tensors the training
neuron runs :mod:`randhet.kernel_triton` (Triton, compiled on first use), the same arithmetic.
:mod:`randhet.loihi` calls the kernel where it applies and runs its per-step loop otherwise
(tensor thresholds, half-precision gradients, the integrators alone on CUDA). The integers and
the gradients are the loop's, bit for bit.

If the build fails (no compiler, no Triton), one line says so on stderr and the loop runs
(and torch's own conv2d). The environment variable ``RANDHET_KERNEL=loop`` turns the kernel
(the whole extension) off; :func:`loop_only` does
so for a block of code (tests and benchmarks compare the two). ``RANDHET_KERNEL=triton`` runs
the Triton kernel on CPU tensors too: with ``TRITON_INTERPRET=1``, in Triton's interpreter,
which is how the tests check it on machines without a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).with_name("csrc") / "cuba.cpp"
DRAWS = SOURCE.with_name("draws.cpp")  # the decay draw and the weight hook, one call each
CONV = SOURCE.with_name("conv.cpp")  # a convolution synapse's conv2d, forward and backward
NAME = "randhet_cuba"  # the built module's name (and its cache folder's)
# no FMA (a * g + g_out rounds twice, as torch's two ops do); no FP traps assumed, so that
# selects and truncations vectorize (no value changes: only exception flags could differ)
CFLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math"]
CLIPS = {None: 0, "wrap": 1, "wrap_twos": 2, "saturate": 3}
_NO_THRESHOLD, _INT, _FLOAT32, _FLOAT64 = 0, 1, 2, 3
_INT64_ONE = torch.zeros(1, dtype=torch.int64)  # what _threshold_mode promotes against

_state: dict[str, object] = {"ext": None, "tried": False, "off": False, "triton": None,
                             "triton_tried": False}


def _off(choice: str | None = None) -> bool:
    """Whether the kernel is off (``choice``: ``RANDHET_KERNEL``'s value, if already read)."""
    if choice is None:
        choice = os.environ.get("RANDHET_KERNEL", "")
    return bool(_state["off"]) or choice == "loop"


def extension(choice: str | None = None) -> ModuleType | None:
    """The built kernel module, or None (turned off, or the build failed: said once).
    ``choice``: ``RANDHET_KERNEL``'s value, if already read."""
    if _off(choice):
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            # its import logs a line about CUDA_HOME on machines without CUDA: not ours to say
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            from torch.utils import cpp_extension  # reason: only when the kernel is first used

            _say_if_building(cpp_extension)
            sources = [str(SOURCE), str(DRAWS), str(CONV)]
            _state["ext"] = cpp_extension.load(name=NAME, sources=sources, extra_cflags=CFLAGS,
                                               verbose=False)
        except Exception as err:  # noqa: BLE001 - any build failure falls back to the loop
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            print(f"randhet: the fused CUBA kernel did not build ({first}); running the "
                  "per-step loop", file=sys.stderr)
    return _state["ext"]  # type: ignore[return-value]


def triton_kernel(choice: str | None = None) -> object | None:
    """The training neuron's Triton kernel (:class:`randhet.kernel_triton.Kernel`), or None
    (turned off, or Triton missing or broken: said once)."""
    if _off(choice):
        return None
    if not _state["triton_tried"]:
        _state["triton_tried"] = True
        try:
            from randhet import kernel_triton  # reason: imports Triton, needed on CUDA only

            _state["triton"] = kernel_triton.Kernel()
        except Exception as err:  # noqa: BLE001 - without Triton, CUDA runs the loop
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            print(f"randhet: the Triton kernel is not available ({first}); CUDA tensors run "
                  "the per-step loop", file=sys.stderr)
    return _state["triton"]


def _neuron_kernel(device: torch.device) -> object | None:
    """What runs the training neuron on ``device``: the C++ extension on CPU (the Triton
    kernel where ``RANDHET_KERNEL=triton``), the Triton kernel on CUDA, else None."""
    choice = os.environ.get("RANDHET_KERNEL", "")
    if device.type == "cuda" or (device.type == "cpu" and choice == "triton"):
        return triton_kernel(choice)
    return extension(choice) if device.type == "cpu" else None


def _say_if_building(cpp_extension: ModuleType) -> None:
    """One line on stderr when no build is cached: the first build takes a minute or two."""
    try:
        folder = Path(cpp_extension._get_build_directory(NAME, False))
    except Exception:  # noqa: BLE001 - a private helper: silence is the fallback
        return
    if not any(folder.glob(f"{NAME}*.so")):
        print("randhet: building the fused CUBA kernel (once per machine, a minute or two) ...",
              file=sys.stderr, flush=True)


def available() -> bool:
    """Whether the kernel is built and on (builds it on the first call)."""
    return extension() is not None


@contextlib.contextmanager
def loop_only() -> Iterator[None]:
    """Run :mod:`randhet.loihi`'s per-step loop inside the block, the kernel off."""
    before = _state["off"]
    _state["off"] = True
    try:
        yield
    finally:
        _state["off"] = before


_MODES: dict[tuple[type, object, torch.dtype], tuple[int, int, float] | None] = {}


def _threshold_mode(threshold: object) -> tuple[int, int, float] | None:
    """(mode, int threshold, float threshold) for the kernel, comparing in the dtype torch
    compares an int64 tensor with ``threshold`` in; None where the kernel does not take it.
    Kept per threshold (its type too: 1 and 1.0 compare apart) and default dtype."""
    key = (type(threshold), threshold, torch.get_default_dtype())
    if key not in _MODES:
        if len(_MODES) >= 256:
            _MODES.clear()
        _MODES[key] = _threshold_mode_of(threshold)
    return _MODES[key]


def _threshold_mode_of(threshold: object) -> tuple[int, int, float] | None:
    if threshold is None:
        return _NO_THRESHOLD, 0, 0.0
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        return None
    dtype = torch.result_type(_INT64_ONE, threshold)
    if dtype == torch.int64:
        return _INT, int(threshold), 0.0
    if dtype in (torch.float32, torch.float64):
        return (_FLOAT32 if dtype == torch.float32 else _FLOAT64), 0, float(threshold)
    return None


def has_steps(d: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether decays ``d`` have a time axis matching ``x`` [.., T] (one per step)."""
    return d.dim() == x.dim() and d.shape[-1] == x.shape[-1]


def _steps_2d(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` [.., T] as a contiguous 2-d tensor the kernel reads: ([N, T], False) where ``x``
    is stored time last, else ([T, N], True), copied unless ``x`` is stored time major (as
    the loop's outputs are): any other layout (a drive repeated over time, stride 0, for one)
    is copied into the loop's."""
    steps = x.shape[-1]
    tm = x.movedim(-1, 0)
    if tm.is_contiguous():
        return tm.reshape(steps, -1), True
    if x.is_contiguous():
        return x.reshape(-1, steps), False
    return tm.contiguous().reshape(steps, -1), True


def _like(x: torch.Tensor, time_major: bool) -> torch.Tensor:
    """``x`` [.., T] contiguous in the layout :func:`_steps_2d` chose for its partner."""
    steps = x.shape[-1]
    if time_major:
        return x.movedim(-1, 0).contiguous().reshape(steps, -1)
    return x.contiguous().reshape(-1, steps)


def _from_steps(out: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The kernel's [T, N] output as [.., T], time-major storage (the loop's strides)."""
    return out.reshape(shape[-1], *shape[:-1]).movedim(0, -1)


def _from_2d(out: torch.Tensor, shape: torch.Size, time_major: bool) -> torch.Tensor:
    """A kernel output laid out as :func:`_steps_2d`'s 2-d input, as [.., T]."""
    return _from_steps(out, shape) if time_major else out.reshape(shape)


def _laid_out(values: torch.Tensor, like: torch.Tensor, per_step: bool,
              time_major: bool) -> torch.Tensor:
    """Per-neuron (or, ``per_step``, per-neuron-and-step) ``values`` broadcast to ``like``
    [.., T] and laid out for the kernel beside it: [N], or 2-d as :func:`_steps_2d` chose."""
    if per_step:
        return _like(values.expand(like.shape), time_major)
    if values.shape == like.shape[:-1] and values.is_contiguous():  # one per row already
        return values.view(-1)
    return values.expand(like.shape[:-1]).contiguous().reshape(-1)


def integrate(drive: torch.Tensor, keep: torch.Tensor, threshold: object, clip: str | None,
              keep_post: bool, per_step: bool,
              ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """:func:`randhet.loihi.integrate` in one call (``keep``: int64 ``4096 - d``; ``per_step``:
    it has a time axis), or None where the kernel does not apply."""
    ext = extension()
    mode = _threshold_mode(threshold)
    if (ext is None or mode is None or drive.device.type != "cpu" or keep.device.type != "cpu"
            or drive.dtype != torch.int64 or clip not in CLIPS or drive.dim() < 1):
        return None
    x, time_major = _steps_2d(drive)
    k = _laid_out(keep.to(torch.int64), drive, per_step, time_major)
    pre, post = ext.integrate_forward(x, time_major, k, per_step, CLIPS[clip], *mode, keep_post)
    return (_from_steps(pre, drive.shape),
            _from_steps(post, drive.shape) if keep_post else None)


def leaky_forward(x: torch.Tensor, keep: torch.Tensor, threshold: object, keep_post: bool,
                  per_step: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The training neuron's integrator forward in one call: ``y = pre / 4096`` (torch's
    default dtype) for the drive ``int64(x * 4096)`` and the integer states after reset
    (``keep_post``); :class:`randhet.loihi.LeakyIntegrator`'s steps, the same bits (``keep``:
    int64 ``4096 - d``). None where the kernel does not apply."""
    ext = extension()
    mode = _threshold_mode(threshold)
    floats = (torch.float32, torch.float64)
    if (ext is None or mode is None or x.device.type != "cpu" or keep.device.type != "cpu"
            or x.dtype not in floats or torch.get_default_dtype() not in floats
            or x.dim() < 1):
        return None
    x2, time_major = _steps_2d(x)
    k = _laid_out(keep.to(torch.int64), x, per_step, time_major)
    y, post = ext.leaky_forward(x2, time_major, k, per_step, *mode, keep_post,
                                torch.get_default_dtype() == torch.float64)
    return _from_steps(y, x.shape), _from_steps(post, x.shape) if keep_post else None


def cuba(drive: torch.Tensor, keep_u: torch.Tensor, keep_v: torch.Tensor, vth: int,
         clip_u: str | None, synaptic_bits: int | None, saturate_v: bool,
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """:func:`randhet.loihi.cuba` in one pass over time (both scans; ``keep_u``, ``keep_v``:
    int64 ``4096 - du``, ``4096 - dv``): U, V before reset and the spikes, [.., T] with the
    loop's strides; None where the kernel does not apply."""
    ext = extension()
    if (ext is None or clip_u not in (None, "wrap", "wrap_twos") or drive.dtype != torch.int64
            or any(t.device.type != "cpu" for t in (drive, keep_u, keep_v)) or drive.dim() < 1
            or (synaptic_bits is not None and not 0 < synaptic_bits < 63)):
        return None
    x, time_major = _steps_2d(drive)
    keeps = []
    for keep in (keep_u, keep_v):
        per_step = has_steps(keep, drive)
        keeps += [_laid_out(keep.to(torch.int64), drive, per_step, time_major), per_step]
    u, v, s = ext.cuba_forward(x, time_major, *keeps, CLIPS[clip_u], synaptic_bits or 0,
                               saturate_v, int(vth))
    return tuple(_from_steps(o, drive.shape) for o in (u, v, s))  # type: ignore[return-value]


_GAIN_DTYPES: dict[tuple[torch.dtype, bool, torch.dtype, bool], torch.dtype] = {}


def gain_dtype(a: torch.Tensor, g: torch.Tensor, per_step: bool) -> torch.dtype:
    """The dtype the backward loop multiplies the gain ``a`` (or, ``per_step``, its step slice)
    with a step slice of the gradient ``g`` in: torch's promotion, which depends on the
    dtypes and on which operand is 0-d."""
    return _gain_dtype(a.dtype, a.dim() == (1 if per_step else 0), g.dtype, g.dim() == 1)


def _gain_dtype(a: torch.dtype, a_scalar: bool, g: torch.dtype, g_scalar: bool) -> torch.dtype:
    """:func:`gain_dtype` per case (kept), found on 0-d and 1-d probes."""
    key = (a, a_scalar, g, g_scalar)
    if key not in _GAIN_DTYPES:
        _GAIN_DTYPES[key] = torch.result_type(torch.zeros(() if a_scalar else (1,), dtype=a),
                                              torch.zeros(() if g_scalar else (1,), dtype=g))
    return _GAIN_DTYPES[key]


def integrate_backward(a: torch.Tensor, g_out: torch.Tensor, per_step: bool,
                       post: torch.Tensor | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The integrator's input gradient ``g[t] = a[t+1] g[t+1] + g_out[t]`` (``a`` [..] or
    [.., T] with ``per_step``, broadcast to ``g_out`` [.., T]) in one call, rounded as the
    loop rounds and stored as the loop stores it; with ``post`` (the int64 states after
    reset), also the decay gradient's per-step terms ``-g[t] * post[t-1] / 4096 / 4096``.
    None where the kernel does not apply."""
    ext = extension()
    floats = (torch.float32, torch.float64)
    if (ext is None or a.device.type != "cpu" or g_out.device.type != "cpu"
            or a.dtype not in floats or g_out.dtype not in floats or g_out.dim() < 1
            or (post is not None and (post.dtype != torch.int64 or post.device.type != "cpu"
                                      or post.shape != g_out.shape))):
        return None
    acc = gain_dtype(a, g_out, per_step)
    g2, time_major = _steps_2d(g_out)
    a2 = _laid_out(a, g_out, per_step, time_major)
    post2 = (_like(post, True) if post is not None
             else torch.empty(0, dtype=torch.int64))
    g, dd = ext.integrate_backward(a2, per_step, g2, time_major, acc == torch.float64, post2)
    return _from_steps(g, g_out.shape), _from_steps(dd, g_out.shape) if post is not None else None


def conv2d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
           stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
           groups: int) -> torch.Tensor | None:
    """``F.conv2d(x, w, bias, stride, padding, dilation, groups)`` as one autograd node of the
    extension (``randhet/csrc/conv.cpp``: blocks of 16 samples side by side, forward and
    backward; torch's values where the sums are exact, equal to rounding otherwise), or None
    where that does not apply: it takes contiguous CPU float32 / float64 tensors, no bias,
    groups 1, no dilation, one stride and one padding for both axes."""
    ext = extension()
    if (ext is None or bias is not None or groups != 1 or tuple(dilation) != (1, 1)
            or len(set(stride)) != 1 or len(set(padding)) != 1 or x.dim() != 4
            or w.dim() != 4 or x.device.type != "cpu" or w.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64) or w.dtype != x.dtype
            or w.shape[2] != w.shape[3] or not (x.is_contiguous() and w.is_contiguous())):
        return None
    return ext.conv2d_node(x, w, int(stride[0]), int(padding[0]))


def neuron_kernel(x: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
                  threshold: object) -> object | None:
    """What runs :func:`neuron_forward` and :func:`neuron_backward` for this neuron (building
    the kernel on the first call), or None where they do not take it. They take tensors on
    one device, CPU or CUDA, float drive and default dtype, a Python float threshold, both
    decays floating point in one dtype and both or neither 0-d (so that torch multiplies both
    with the gradient in one dtype)."""
    floats = (torch.float32, torch.float64)
    if not (isinstance(threshold, float) and x.dim() >= 1 and x.dtype in floats
            and torch.get_default_dtype() in floats and du.dtype == dv.dtype
            and du.dtype in floats and (du.dim() == 0) == (dv.dim() == 0)
            and du.device == x.device and dv.device == x.device):
        return None
    return _neuron_kernel(x.device)


def neuron_forward(k: object, x: torch.Tensor, du: torch.Tensor, u_steps: bool,
                   dv: torch.Tensor, v_steps: bool, threshold: float, grid: int,
                   keep_post: bool, keep_y: bool = True,
                   ) -> tuple[torch.Tensor, torch.Tensor | None,
                              tuple[torch.Tensor, torch.Tensor] | None]:
    """The training neuron's forward in one pass (:func:`randhet.loihi.cuba_spikes`) on
    ``k``, the :func:`neuron_kernel` that takes it: spikes (stored as ``x`` is, so the next
    synapse reads them without a copy) and the voltage before reset (SLAYER units, torch's
    default dtype) and, with ``keep_post``, the states after reset (u, v) as the decay
    gradient reads them (the integers / 4096, rounded to the default dtype), each [.., T].
    ``du``, ``dv``: the integer-valued decays (floating point; the scans keep
    ``4096 - int64(d)``), per neuron or (``*_steps``) per neuron and step; ``threshold`` in
    SLAYER units; ``grid`` > 0 (a power of two) floors the drive to ``1 / grid`` first.
    Without ``keep_y`` (no backward to come) the voltage is not written and None comes back
    in its place. A drive repeated over time (stride 0, as direct encoding gives) is read as
    it is, without a copy; its spikes come out time major."""
    mode = _threshold_mode(threshold * (1 << 12))  # LeakyIntegrator's reset threshold
    if x.stride(-1) == 0 and x[..., 0].is_contiguous():  # one drive for every step
        x2, time_major = x.movedim(-1, 0).reshape(x.shape[-1], -1), True  # strides (0, 1)
    else:
        x2, time_major = _steps_2d(x)
    spikes, yv, pu, pv = k.neuron_forward(  # type: ignore[attr-defined]
        x2, time_major, _laid_out(du, x, u_steps, time_major), u_steps,
        _laid_out(dv, x, v_steps, time_major), v_steps, *mode, threshold, grid,
        keep_post, keep_y, torch.get_default_dtype() == torch.float64)
    post = (_from_steps(pu, x.shape), _from_steps(pv, x.shape)) if keep_post else None
    return (_from_2d(spikes, x.shape, time_major),
            _from_steps(yv, x.shape) if keep_y else None, post)


def neuron_node(k: object, x: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
                threshold: float, surrogate: tuple[float, float] | None,
                grid: int) -> torch.Tensor | None:
    """:func:`randhet.loihi.cuba_spikes` with a gradient as one autograd node of ``k`` (the
    :func:`neuron_kernel`), where ``k`` has one (the C++ extension: forward and backward,
    layouts and gradient reductions included, run without Python); None elsewhere (the
    Triton kernel: the caller runs its Python node)."""
    node = getattr(k, "neuron_node", None)
    if node is None:
        return None
    u_steps, v_steps = has_steps(du, x), has_steps(dv, x)
    default = torch.get_default_dtype()
    acc = _gain_dtype(du.dtype, du.dim() == (1 if u_steps else 0), default, x.dim() == 1)
    tau, scale = surrogate if surrogate is not None else (1.0, 0.0)
    return node(x, du, dv, u_steps, v_steps, *_threshold_mode(threshold * (1 << 12)),
                threshold, grid, surrogate is not None, tau, scale, acc == torch.float64,
                default == torch.float64)


def neuron_backward(k: object, g_s: torch.Tensor, yv: torch.Tensor,
                    surrogate: tuple[float, float, float] | None, grid: int, du: torch.Tensor,
                    u_steps: bool, dv: torch.Tensor, v_steps: bool, acc_double: bool,
                    post: tuple[torch.Tensor, torch.Tensor] | None,
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The training neuron's backward in one pass on ``k`` (the forward's
    :func:`neuron_kernel`): dL/dx and, with ``post`` (the forward's
    states after reset as :func:`neuron_forward` gives them), the per-step terms of both decay
    gradients, [.., T].
    ``surrogate``: SLAYER's (threshold, tau_rho, scale_rho), None for the straight-through
    estimator; ``grid``: the forward's; ``du``, ``dv``: the forward's decays, whose gains
    ``1 - d / 4096`` multiply the gradient in float64 (``acc_double``) or float32 (the dtype
    torch multiplies them in: :func:`gain_dtype`); ``g_s`` and ``yv`` in one dtype (autograd
    gives the spikes')."""
    g2, time_major = _steps_2d(g_s)
    th, tau, scale = surrogate if surrogate is not None else (0.0, 1.0, 0.0)
    pu, pv = ((_like(p, True) for p in post) if post is not None
              else (g_s.new_empty(0),) * 2)
    gx, ddu, ddv = k.neuron_backward(  # type: ignore[attr-defined]
        g2, time_major, _like(yv, True), surrogate is not None, th, tau, scale, grid,
        _laid_out(du, g_s, u_steps, time_major), u_steps,
        _laid_out(dv, g_s, v_steps, time_major), v_steps, acc_double, pu, pv)
    shape = g_s.shape
    grad_x = _from_2d(gx, shape, time_major)
    if post is None:
        return grad_x, None, None
    return grad_x, _from_steps(ddu, shape), _from_steps(ddv, shape)
