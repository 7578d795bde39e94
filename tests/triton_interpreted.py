"""The Triton kernel (randhet/kernel_triton.py) against the C++ kernel, bit for bit, run by
Triton's interpreter on CPU tensors. tests/test_kernel_triton.py runs this file in a fresh
process with TRITON_INTERPRET=1 (it must be set before Triton is first imported); it prints
one ``checked`` line per group and exits non-zero at the first difference."""

from __future__ import annotations

import itertools
import os
import sys

import torch
import torch.nn.functional as F

from randhet import kernel
from randhet.kernel_triton import Kernel
from randhet.layer_tokens import network_from_tokens
from randhet.models.neuron import RandHetNeuron
from randhet.models.spiking import SpikingNetwork
from randhet.spec import EncodingSpec, NeuronSpec


def same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
        sys.exit(f"differs: {what}")
    # equal values, and the same sign of every zero (torch.equal takes -0 for +0)
    if a.is_floating_point() and not torch.equal(torch.signbit(a), torch.signbit(b)):
        sys.exit(f"differs in the sign of a zero: {what}")


def direct(ext: object, triton: Kernel) -> int:
    """Both kernels' neuron_forward and neuron_backward on the same arguments."""
    g = torch.Generator().manual_seed(0)
    n = 0
    rows, steps = 200, 10  # two programs, the second one partly masked
    # (time major, x's dtype, y in float64, per-step keep_u, per-step keep_v): each value of
    # each, and each pair of the layout and the dtypes
    for i, (time_major, x_dtype, y_double, u_steps, v_steps) in enumerate((
            (False, torch.float32, False, False, False), (True, torch.float32, False, True, False),
            (False, torch.float64, True, False, True), (True, torch.float64, True, True, True),
            (False, torch.float32, True, True, True), (True, torch.float64, False, False, True))):
        shape = (steps, rows) if time_major else (rows, steps)
        x = (torch.randn(shape, generator=g) * 3).to(x_dtype)
        x[x.abs() < 0.05] = -0.0
        x.view(-1)[:7] = torch.tensor([2.0 ** 30, -2.0 ** 30, 1e-9, -1e-9, 0.5, -0.5, 1e6])
        if i in (1, 5):  # one drive for every step (stride 0): the vectorized and int64 paths
            x = x[:1].expand(shape)
        # integer-valued decays in x's dtype, as the training neuron passes them
        decays = [torch.randint(0, 2097, shape if per_step else (rows,), generator=g).to(x_dtype)
                 for per_step in (u_steps, v_steps)]
        # every threshold mode in every config; the grid and keep_post rotate over configs
        pairs = list(itertools.product((0, 64), (False, True)))
        for j, (mode, th_int, th_float) in enumerate(
                ((1, 5120, 0.0), (2, 0, 5120.0), (3, 0, 5120.3), (0, 0, 0.0))):
            grid, keep_post = pairs[(i + j) % len(pairs)]
            keep_y = (i + j) % 3 != 2
            args = (x, time_major, decays[0], u_steps, decays[1], v_steps, mode, th_int,
                    th_float, 1.25, grid, keep_post, keep_y, y_double)
            what = f"forward {args[1:]}"
            for a, b in zip(ext.neuron_forward(*args), triton.neuron_forward(*args),  # type: ignore[attr-defined]
                            strict=True):
                same(a, b, what)
            n += 1
        _, yv, pu, pv = ext.neuron_forward(x, time_major, decays[0], u_steps, decays[1],  # type: ignore[attr-defined]
                                           v_steps, 3, 0, 5120.3, 1.25, 0, True, True,
                                           y_double)
        grad = torch.randn(shape, generator=g).to(yv.dtype)
        grad[grad.abs() < 0.05] = -0.0
        # the gain's dtype: float32 and float64 (torch promotes a float64 gradient with any
        # gain to float64); the surrogate, the grid and the decay terms rotate over configs
        backward = list(itertools.product((False, True), (0, 64), (False, True)))
        for j, acc in enumerate((torch.float32, torch.float64) * 2):
            if acc == torch.float32 and yv.dtype == torch.float64:
                continue
            surrogate, grid, terms = backward[(2 * i + j) % len(backward)]
            post = (pu, pv) if terms else (torch.empty(0, dtype=torch.int64),) * 2
            args = (grad, time_major, yv, surrogate, 1.25, 0.3, 2.0, grid, decays[0], u_steps,
                    decays[1], v_steps, acc == torch.float64, *post)
            what = f"backward {time_major, acc, surrogate, grid, terms, u_steps, v_steps}"
            for a, b in zip(ext.neuron_backward(*args), triton.neuron_backward(*args),  # type: ignore[attr-defined]
                            strict=True):
                same(a, b, what)
            n += 1
    return n


def neuron_step(spec: NeuronSpec, shape: tuple[int, ...], x: torch.Tensor,
                straight_through: bool, on_grid: bool) -> tuple[torch.Tensor, ...]:
    """Spikes and the gradients of x and both mean decays through RandHetNeuron."""
    neuron = RandHetNeuron(spec, shape[1:-1], torch.Generator().manual_seed(3))
    neuron.straight_through = straight_through
    xin = x.clone().requires_grad_(True)
    spikes = neuron(xin, on_grid=on_grid)
    weights = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    (spikes * weights).sum().backward()
    grads = [p.grad if p.grad is not None else torch.zeros(0)
             for p in (neuron.mean_current_decay, neuron.mean_voltage_decay)]
    return spikes.detach(), xin.grad, *grads


def through_autograd() -> int:
    """RandHetNeuron and whole training steps with RANDHET_KERNEL=triton against the C++."""
    n = 0
    shapes = {"dense": (5, 33, 16), "conv": (3, 4, 5, 5, 12)}
    # (draw, straight-through, time major, on the drive grid)
    for (layer, shape), (draw, straight_through, time_major) in itertools.product(
            shapes.items(), (("forward", False, False), ("step", True, True))):
        spec = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03,
                          sigma=1.0, resample=draw, learn_decay=draw == "step")
        x = torch.round(torch.randn(shape, generator=torch.Generator().manual_seed(11))
                        * 1.5 * 64) / 64
        if time_major:
            x = x.movedim(-1, 0).contiguous().movedim(0, -1)
        results = []
        for backend in ("", "triton"):
            os.environ["RANDHET_KERNEL"] = backend
            results.append(neuron_step(spec, shape, x, straight_through, on_grid=time_major))
        if results[0][0].sum() == 0:
            sys.exit(f"no spikes: {layer} {draw}")
        for a, b in zip(*results, strict=True):
            same(a, b, f"neuron {layer} {draw} ste={straight_through} tm={time_major}")
        n += 1
    for tokens in (["dense:24"], ["conv:4:k3", "pool:2", "flatten", "dense:8"]):
        neuron = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=1.0,
                            learn_decay=True)
        spec = network_from_tokens((1, 8, 8), tokens, 10, neuron, EncodingSpec(timesteps=12))
        x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
        y = torch.arange(8) % 10
        results = []
        for backend in ("", "triton"):
            os.environ["RANDHET_KERNEL"] = backend
            torch.manual_seed(0)
            net = SpikingNetwork(spec, seed=0)
            logits = net(x)
            F.cross_entropy(logits, y).backward()
            results.append([logits.detach()] + [p.grad for p in net.parameters()
                                                 if p.grad is not None])
        for a, b in zip(*results, strict=True):
            same(a, b, f"training step {tokens}")
        n += 1
    os.environ["RANDHET_KERNEL"] = ""
    return n


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") != "1":
        sys.exit("run with TRITON_INTERPRET=1")
    ext = kernel.extension()
    if ext is None:
        sys.exit("the C++ kernel did not build")
    print(f"checked {direct(ext, Kernel())} direct", flush=True)
    print(f"checked {through_autograd()} autograd", flush=True)
