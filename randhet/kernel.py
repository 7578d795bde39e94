"""The fused integer CUBA kernel: the whole time loop of a layer's neurons in one call.

It runs the integrators of :mod:`randhet.loihi` (one scan, or a CUBA layer's two on the
integer datapath) and the training neuron whole (:func:`randhet.loihi.cuba_spikes`: the drive
floored to Loihi's grid, both integrators and SLAYER's spike function, forward and backward).

The C++ extension (``randhet/csrc``: ``cuba.cpp``, the integrators and the training neuron;
``draws.cpp``, RandHet's decay draw for :mod:`randhet.decays` and the 8-bit weight hook of
:mod:`randhet.models.neuron`; ``conv.cpp``, a convolution synapse's conv2d, :func:`conv2d`;
``threads.cpp``, the threads' floating-point mode for :func:`subnormals_flushed`;
``randhet.h``, what they share; ``bindings.cpp``, the one Python module) is built with
``torch.utils.cpp_extension`` the first time it is needed (cached under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) and runs on CPU tensors,
parallel over the batch times the neurons. On CUDA tensors the training neuron runs
:mod:`randhet.kernel_triton` (Triton, compiled on first use), the same arithmetic. The layout
steps between torch's [.., T] tensors and the kernels' 2-d buffers are the extension's
(``randhet.h``), for both kernels.

Which backend runs an op on a device and dtype is decided in one place, :func:`backend`,
which says why (:func:`decisions` lists what was decided). An op whose arguments the kernel
does not take (tensor thresholds, half-precision gradients, ...) returns None here and
:mod:`randhet.loihi` runs its per-step loop. The integers and the gradients are the loop's,
bit for bit.

If the build fails (no compiler, no Triton), one line says so on stderr and the loop runs
(and torch's own conv2d). The environment variable ``RANDHET_KERNEL=loop`` turns the kernel
(the whole extension) off; :func:`loop_only` does
so for a block of code (tests and benchmarks compare the two). ``RANDHET_KERNEL=triton`` runs
the Triton kernel on CPU tensors too: with ``TRITON_INTERPRET=1``, in Triton's interpreter,
which is how the tests check it on machines without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).with_name("csrc") / "cuba.cpp"
DRAWS = SOURCE.with_name("draws.cpp")  # the decay draw and the weight hook, one call each
CONV = SOURCE.with_name("conv.cpp")  # a convolution synapse's conv2d, forward and backward
THREADS = SOURCE.with_name("threads.cpp")  # the intra-op threads' floating-point mode
BINDINGS = SOURCE.with_name("bindings.cpp")  # the one Python module
HEADER = Path(__file__).with_name("csrc") / "randhet.h"  # what the four files share
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
            sources = [str(SOURCE), str(DRAWS), str(CONV), str(THREADS), str(BINDINGS)]
            # torch rebuilds when a source or a flag changes: the header's hash is a flag
            header = hashlib.sha1(HEADER.read_bytes()).hexdigest()[:16]
            _state["ext"] = cpp_extension.load(
                name=NAME, sources=sources, extra_cflags=[*CFLAGS, f"-DRANDHET_H={header}"],
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


@contextlib.contextmanager
def subnormals_flushed() -> Iterator[bool]:
    """Inside the block this thread and torch's intra-op threads flush subnormal floats to zero
    and read them as zero (x86's FTZ and DAZ, set by the extension); yields whether that
    applies (the kernel built and on, x86). Values that are normal keep their bits; values
    under the smallest normal number (1.2e-38 in float32) become 0. Every operation on a
    subnormal takes a microcode assist: an attack's gradient step through a narrow surrogate,
    whose gradients underflow, ran 2.2x slower without this (mnist layout, 1 thread).
    Threads that torch starts inside the block (a raised thread count) are not covered."""
    ext = extension()
    if ext is None:
        yield False
        return
    before = ext.flush_subnormals(True)
    try:
        yield True
    finally:
        ext.flush_subnormals(before)


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


# ---------------------------------------------------------------------------------------------
# which backend runs what: the one place it is decided


@dataclass(frozen=True)
class Backend:
    """What runs an op on a device and dtype (``c++``, ``triton`` or ``loop``: the per-step
    loop of :mod:`randhet.loihi`, or torch's own op) and why; ``impl``: the extension module or
    the Triton kernel (None for the loop)."""

    name: str
    why: str
    impl: object | None = None


OPS = ("neuron", "integrator", "conv2d", "draw", "quantize")
_FLOATS = (torch.float32, torch.float64)
_LATEST: dict[tuple[str, str, torch.dtype], Backend] = {}  # what each op ran last
_CHOSEN: dict[tuple[object, ...], Backend] = {}


def backend(op: str, device: torch.device, dtype: torch.dtype) -> Backend:
    """The backend of ``op`` (one of :data:`OPS`) for tensors on ``device`` whose data is
    ``dtype``: the C++ extension on CPU tensors (integrators on int64 drives, the neuron on
    float32 / float64 drives: a vectorized float path where every state stays exact, the
    int64 scan elsewhere); the Triton kernel for the neuron on CUDA (and on CPU where
    ``RANDHET_KERNEL=triton``: Triton's interpreter), laid out by the extension; else the loop.
    Decided once per op, device type, dtype and ``RANDHET_KERNEL`` value, and kept; the
    decision and its reason are recorded (:func:`decisions`); the extension and Triton are
    built on first use."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}: one of {', '.join(OPS)}")
    choice = os.environ.get("RANDHET_KERNEL", "")
    chosen = _CHOSEN.get((op, device.type, dtype, choice, _built()))
    if chosen is None:
        chosen = _choose(op, device, dtype, choice)
        # kept under the state after the decision (the builds it tried are done)
        _CHOSEN[(op, device.type, dtype, choice, _built())] = chosen
    _LATEST[(op, device.type, dtype)] = chosen
    return chosen


def _built() -> tuple[object, ...]:
    """What a decision depends on besides the op, device, dtype and ``RANDHET_KERNEL``: the
    kernel switched off (:func:`loop_only`), the builds tried and what they gave (a kept
    decision holds what it chose, so those objects, and their ids, live as long as it)."""
    return (bool(_state.get("off")), bool(_state.get("tried")), bool(_state.get("triton_tried")),
            id(_state.get("ext")), id(_state.get("triton")))


def _choose(op: str, device: torch.device, dtype: torch.dtype, choice: str) -> Backend:
    """:func:`backend`'s rules, in order."""
    if _off(choice):
        chosen = Backend("loop", "the kernel is off (RANDHET_KERNEL=loop or kernel.loop_only)")
    elif op == "neuron" and (device.type == "cuda" or (device.type == "cpu"
                                                        and choice == "triton")):
        chosen = _triton_backend(device, dtype, choice)
    elif device.type != "cpu":
        chosen = Backend("loop", f"the extension runs on CPU tensors, not {device.type}")
    elif op == "integrator" and dtype not in (torch.int64, *_FLOATS):
        chosen = Backend("loop", f"the integrators take int64 or float32/64, not {dtype}")
    elif op != "integrator" and dtype not in _FLOATS:
        chosen = Backend("loop", f"the {op} kernel takes float32 or float64, not {dtype}")
    else:
        ext = extension(choice)
        chosen = (Backend("loop", "the C++ extension did not build") if ext is None else
                  Backend("c++", _CPP_WHY[op] if dtype != torch.float32 or op != "neuron"
                          else _CPP_WHY["neuron_f32"], ext))
    return chosen


_CPP_WHY = {
    "neuron": "the C++ extension (the int64 scan)",
    "neuron_f32": "the C++ extension (the vectorized float path while every state stays "
                  "below 2**41 and the decays in 0..4096, else the int64 scan)",
    "integrator": "the C++ extension (one scan over time)",
    "conv2d": "the C++ extension's conv node (16 samples side by side)",
    "draw": "the C++ extension (one call for both decays)",
    "quantize": "the C++ extension's node (round to the step, clamp)",
}


def _triton_backend(device: torch.device, dtype: torch.dtype, choice: str) -> Backend:
    if dtype not in _FLOATS:
        return Backend("loop", f"the Triton kernel takes float32 or float64, not {dtype}")
    k = triton_kernel(choice)
    if k is None:
        return Backend("loop", "Triton is not available")
    if extension(choice) is None:
        return Backend("loop", "the Triton kernel's layout steps are the C++ extension's, "
                               "which did not build")
    where = "CUDA" if device.type == "cuda" else "CPU, RANDHET_KERNEL=triton"
    return Backend("triton", f"the Triton kernel ({where})", k)


def decisions() -> dict[str, str]:
    """What ran each op on each device and dtype in this process (the latest decision):
    ``"op on device dtype"`` -> ``"name: why"``."""
    return {f"{op} on {device} {str(dtype).removeprefix('torch.')}": f"{b.name}: {b.why}"
            for (op, device, dtype), b in _LATEST.items()}


def _layout() -> ModuleType:
    """The extension, for its layout steps (whoever runs the kernel)."""
    ext = extension()
    assert ext is not None  # a kernel was chosen: backend() checked that it built
    return ext


# ---------------------------------------------------------------------------------------------
# the integrators (randhet.loihi) on the extension


def integrate(drive: torch.Tensor, keep: torch.Tensor, threshold: object, clip: str | None,
              keep_post: bool, per_step: bool,
              ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """:func:`randhet.loihi.integrate` in one call (``keep``: int64 ``4096 - d``; ``per_step``:
    it has a time axis), or None where the kernel does not take it."""
    mode = _threshold_mode(threshold)
    if (mode is None or clip not in CLIPS or drive.dim() < 1 or drive.dtype != torch.int64
            or keep.device != drive.device):
        return None
    ext = backend("integrator", drive.device, drive.dtype).impl
    if ext is None:
        return None
    x, time_major = ext.steps_2d(drive)
    k = ext.laid_out(keep.to(torch.int64), drive, per_step, time_major)
    pre, post = ext.integrate_forward(x, time_major, k, per_step, CLIPS[clip], *mode, keep_post)
    return (ext.from_steps(pre, drive.shape),
            ext.from_steps(post, drive.shape) if keep_post else None)


def leaky_forward(x: torch.Tensor, keep: torch.Tensor, threshold: object, keep_post: bool,
                  per_step: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The training neuron's integrator forward in one call: ``y = pre / 4096`` (torch's
    default dtype) for the drive ``int64(x * 4096)`` and the integer states after reset
    (``keep_post``); :class:`randhet.loihi.LeakyIntegrator`'s steps, the same bits (``keep``:
    int64 ``4096 - d``). None where the kernel does not take it."""
    mode = _threshold_mode(threshold)
    if (mode is None or torch.get_default_dtype() not in _FLOATS or x.dim() < 1
            or keep.device != x.device):
        return None
    ext = backend("integrator", x.device, x.dtype).impl
    if ext is None or x.dtype not in _FLOATS:
        return None
    x2, time_major = ext.steps_2d(x)
    k = ext.laid_out(keep.to(torch.int64), x, per_step, time_major)
    y, post = ext.leaky_forward(x2, time_major, k, per_step, *mode, keep_post,
                                torch.get_default_dtype() == torch.float64)
    return ext.from_steps(y, x.shape), ext.from_steps(post, x.shape) if keep_post else None


def cuba(drive: torch.Tensor, keep_u: torch.Tensor, keep_v: torch.Tensor, vth: int,
         clip_u: str | None, synaptic_bits: int | None, saturate_v: bool,
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """:func:`randhet.loihi.cuba` in one pass over time (both scans; ``keep_u``, ``keep_v``:
    int64 ``4096 - du``, ``4096 - dv``): U, V before reset and the spikes, [.., T] with the
    loop's strides; None where the kernel does not take it."""
    if (clip_u not in (None, "wrap", "wrap_twos") or drive.dtype != torch.int64
            or drive.dim() < 1 or keep_u.device != drive.device or keep_v.device != drive.device
            or (synaptic_bits is not None and not 0 < synaptic_bits < 63)):
        return None
    ext = backend("integrator", drive.device, drive.dtype).impl
    if ext is None:
        return None
    x, time_major = ext.steps_2d(drive)
    keeps = []
    for keep in (keep_u, keep_v):
        per_step = has_steps(keep, drive)
        keeps += [ext.laid_out(keep.to(torch.int64), drive, per_step, time_major), per_step]
    u, v, s = ext.cuba_forward(x, time_major, *keeps, CLIPS[clip_u], synaptic_bits or 0,
                               saturate_v, int(vth))
    return tuple(ext.from_steps(o, drive.shape) for o in (u, v, s))  # type: ignore[return-value]


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
    None where the kernel does not take it."""
    if (a.dtype not in _FLOATS or g_out.dim() < 1 or a.device != g_out.device
            or (post is not None and (post.dtype != torch.int64 or post.device != g_out.device
                                      or post.shape != g_out.shape))):
        return None
    ext = backend("integrator", g_out.device, g_out.dtype).impl
    if ext is None or g_out.dtype not in _FLOATS:
        return None
    acc = gain_dtype(a, g_out, per_step)
    g2, time_major = ext.steps_2d(g_out)
    a2 = ext.laid_out(a, g_out, per_step, time_major)
    post2 = (ext.like(post, True) if post is not None
             else torch.empty(0, dtype=torch.int64))
    g, dd = ext.integrate_backward(a2, per_step, g2, time_major, acc == torch.float64, post2)
    return (ext.from_steps(g, g_out.shape),
            ext.from_steps(dd, g_out.shape) if post is not None else None)


def conv2d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
           stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
           groups: int) -> torch.Tensor | None:
    """``F.conv2d(x, w, bias, stride, padding, dilation, groups)`` as one autograd node of the
    extension (``randhet/csrc/conv.cpp``: blocks of 16 samples side by side, forward and
    backward; torch's values where the sums are exact, equal to rounding otherwise), or None
    where that does not apply: it takes contiguous CPU float32 / float64 tensors, no bias,
    groups 1, no dilation, one stride and one padding for both axes."""
    if (bias is not None or groups != 1 or tuple(dilation) != (1, 1)
            or len(set(stride)) != 1 or len(set(padding)) != 1 or x.dim() != 4
            or w.dim() != 4 or w.device != x.device or w.dtype != x.dtype
            or w.shape[2] != w.shape[3] or not (x.is_contiguous() and w.is_contiguous())):
        return None
    ext = backend("conv2d", x.device, x.dtype).impl
    if ext is None:
        return None
    return ext.conv2d_node(x, w, int(stride[0]), int(padding[0]))


# ---------------------------------------------------------------------------------------------
# the training neuron (randhet.loihi.cuba_spikes): the C++ extension or the Triton kernel


def neuron_kernel(x: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
                  threshold: object) -> object | None:
    """What runs :func:`neuron_forward` and :func:`neuron_backward` for this neuron (the
    :func:`backend` of ``neuron`` for ``x``), or None where they do not take it. They take
    tensors on one device, a float drive and default dtype, a Python float threshold, both
    decays floating point in one dtype and both or neither 0-d (so that torch multiplies both
    with the gradient in one dtype)."""
    if not (isinstance(threshold, float) and x.dim() >= 1 and du.dtype == dv.dtype
            and torch.get_default_dtype() in _FLOATS and du.dtype in _FLOATS
            and (du.dim() == 0) == (dv.dim() == 0)
            and du.device == x.device and dv.device == x.device):
        return None
    return backend("neuron", x.device, x.dtype).impl


def neuron_options(threshold: float, surrogate: tuple[float, float] | None, grid: int,
                   du: torch.Tensor, x: torch.Tensor) -> object:
    """The options (``randhet.h``'s ``NeuronOptions``) of the training neuron for drive ``x``
    and current decays ``du``: the reset threshold as :class:`randhet.loihi.LeakyIntegrator`
    compares it, the spike ``threshold`` (SLAYER units), SLAYER's ``surrogate`` (tau, scale;
    None: straight-through), the drive ``grid``, the gains' dtype and the outputs'."""
    u_steps = has_steps(du, x)
    default = torch.get_default_dtype()
    acc = _gain_dtype(du.dtype, du.dim() == (1 if u_steps else 0), default, x.dim() == 1)
    return _options(threshold, surrogate, grid, acc == torch.float64,
                    default == torch.float64, id(_layout()))


@functools.lru_cache(maxsize=256)
def _options(threshold: float, surrogate: tuple[float, float] | None, grid: int,
             acc_double: bool, y_double: bool, ext_id: int) -> object:
    mode, th_int, th_float = _threshold_mode(threshold * (1 << 12))  # type: ignore[misc]
    tau, scale = surrogate if surrogate is not None else (1.0, 0.0)
    return _layout().NeuronOptions(  # type: ignore[attr-defined]
        th_mode=mode, th_int=th_int, th_float=th_float, th_spike=threshold, grid=grid,
        surrogate=surrogate is not None, tau=tau, scale=scale, acc_double=acc_double,
        y_double=y_double)


def neuron_forward(k: object, x: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
                   opts: object, keep_post: bool, keep_y: bool = True,
                   ) -> tuple[torch.Tensor, torch.Tensor | None,
                              tuple[torch.Tensor, torch.Tensor] | None]:
    """The training neuron's forward in one pass (:func:`randhet.loihi.cuba_spikes`) on
    ``k``, the :func:`neuron_kernel` that takes it, with :func:`neuron_options` ``opts``:
    spikes (stored as ``x`` is, so the next synapse reads them without a copy) and the
    voltage before reset (SLAYER units, torch's default dtype) and, with ``keep_post``, the
    states after reset (u, v) as the decay gradient reads them (the integers / 4096, rounded
    to the default dtype), each [.., T]. ``du``, ``dv``: the integer-valued decays (floating
    point; the scans keep ``4096 - int64(d)``), per neuron or per neuron and step. Without
    ``keep_y`` (no backward to come) the voltage is not written and None comes back in its
    place. A drive repeated over time (stride 0, as direct encoding gives) is read as it is,
    without a copy; its spikes come out time major."""
    ext = _layout()
    x2, time_major = ext.drive_2d(x)
    u_steps, v_steps = has_steps(du, x), has_steps(dv, x)
    spikes, yv, pu, pv = k.neuron_forward(  # type: ignore[attr-defined]
        x2, time_major, ext.laid_out(du, x, u_steps, time_major), u_steps,
        ext.laid_out(dv, x, v_steps, time_major), v_steps, opts.th_mode, opts.th_int,  # type: ignore[attr-defined]
        opts.th_float, opts.th_spike, opts.grid, keep_post, keep_y, opts.y_double)  # type: ignore[attr-defined]
    post = (ext.from_steps(pu, x.shape), ext.from_steps(pv, x.shape)) if keep_post else None
    return (ext.from_2d(spikes, x.shape, time_major),
            ext.from_steps(yv, x.shape) if keep_y else None, post)


def neuron_node(k: object, x: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
                opts: object) -> torch.Tensor | None:
    """:func:`randhet.loihi.cuba_spikes` with a gradient as one autograd node of ``k`` (the
    :func:`neuron_kernel`), where ``k`` has one (the C++ extension: forward and backward,
    layouts and gradient reductions included, run without Python); None elsewhere (the
    Triton kernel: the caller runs its Python node)."""
    node = getattr(k, "neuron_node", None)
    return None if node is None else node(x, du, dv, opts)


def neuron_backward(k: object, g_s: torch.Tensor, yv: torch.Tensor, du: torch.Tensor,
                    dv: torch.Tensor, opts: object,
                    post: tuple[torch.Tensor, torch.Tensor] | None,
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The training neuron's backward in one pass on ``k`` (the forward's
    :func:`neuron_kernel`, with its ``opts``): dL/dx and, with ``post`` (the forward's states
    after reset as :func:`neuron_forward` gives them), the per-step terms of both decay
    gradients, [.., T]. ``du``, ``dv``: the forward's decays, whose gains ``1 - d / 4096``
    multiply the gradient in the options' dtype; ``g_s`` and ``yv`` in one dtype (autograd
    gives the spikes')."""
    ext = _layout()
    g2, time_major = ext.steps_2d(g_s)
    u_steps, v_steps = has_steps(du, g_s), has_steps(dv, g_s)
    pu, pv = ((ext.like(p, True) for p in post) if post is not None
              else (g_s.new_empty(0),) * 2)
    gx, ddu, ddv = k.neuron_backward(  # type: ignore[attr-defined]
        g2, time_major, ext.like(yv, True), opts.surrogate, opts.th_spike, opts.tau,  # type: ignore[attr-defined]
        opts.scale, opts.grid, ext.laid_out(du, g_s, u_steps, time_major), u_steps,  # type: ignore[attr-defined]
        ext.laid_out(dv, g_s, v_steps, time_major), v_steps, opts.acc_double, pu, pv)  # type: ignore[attr-defined]
    shape = g_s.shape
    grad_x = ext.from_2d(gx, shape, time_major)
    if post is None:
        return grad_x, None, None
    return grad_x, ext.from_steps(ddu, shape), ext.from_steps(ddv, shape)
