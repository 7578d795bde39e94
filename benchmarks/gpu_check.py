"""The GPU check of issue 15: the training neuron's Triton kernel on CUDA against the C++
kernel and the CUDA loop, a CUDA training run, and the training-step timings on the GPU.

Run by ``benchmarks/gpu_check.sh`` on a machine with a GPU (see ``benchmarks/README.md``).
``--device cpu`` with ``TRITON_INTERPRET=1`` runs every check on the CPU through Triton's
interpreter (small and slow): how the script itself is tried on machines without a GPU.

Checks, each printed as it finishes and written to ``--out`` (JSON):

1. ``direct``: the kernel's forward (spikes, voltages, states after reset) and its backward with
   the straight-through estimator equal the C++ kernel's on the same inputs, bit for bit; with
   the surrogate, the exponential is the device's, so the gradient is compared with the CUDA
   loop's in check 2 and only its largest difference from the CPU is reported here.
2. ``training step``: one forward and backward of a dense and a conv network on the device,
   kernel against the per-step loop (``kernel.loop_only``): logits and every gradient equal.
3. ``train``: ``randhet train`` on the digits set with ``train.device`` the device, 2 epochs.
   Two-process NCCL training needs two GPUs (``cuda:LOCAL_RANK``): run where there are.
4. ``speed``: ``benchmarks/peers.py``'s training steps on the device (the peers that are
   installed), median of interleaved rounds, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import torch
import torch.nn.functional as F

from randhet import kernel
from randhet.layer_tokens import network_from_tokens
from randhet.models.spiking import SpikingNetwork
from randhet.spec import EncodingSpec, NeuronSpec

ROOT = harness.ROOT


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.cpu(), b.cpu()
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def check_direct(device: str) -> dict[str, Any]:
    """The device kernel against the C++ kernel on the same arguments."""
    from randhet.kernel_triton import Kernel  # reason: imports Triton

    ext, gpu = kernel.extension(), Kernel()
    if ext is None:
        return {"pass": False, "error": "the C++ kernel did not build"}
    g = torch.Generator().manual_seed(0)
    cases, failed, surrogate_max = 0, [], 0.0
    rows, steps = (4099, 33) if device != "cpu" else (300, 9)
    for time_major in (False, True):
        for x_dtype, y_double in ((torch.float32, False), (torch.float64, True)):
            for u_steps in (False, True):
                shape = (steps, rows) if time_major else (rows, steps)
                x = (torch.randn(shape, generator=g) * 3).to(x_dtype)
                decays = [torch.randint(0, 2097, shape if s else (rows,), generator=g).to(x_dtype)
                         for s in (u_steps, not u_steps)]  # decays, in x's dtype
                for mode, th_int, th_float in ((1, 5120, 0.0), (2, 0, 5120.0), (3, 0, 5120.3)):
                    for grid in (0, 64):
                        args = (time_major, decays[0], u_steps, decays[1], not u_steps, mode,
                                th_int, th_float, 1.25, grid, True, True, y_double)
                        cpu = ext.neuron_forward(x, *args)
                        dev = gpu.neuron_forward(x.to(device), time_major,
                                                 *(a.to(device) if torch.is_tensor(a) else a
                                                   for a in args[1:]))
                        cases += 1
                        if not all(_equal(a, b) for a, b in zip(cpu, dev, strict=True)):
                            failed.append(f"forward tm={time_major} {x_dtype} mode={mode} "
                                          f"grid={grid}")
                _, yv, pu, pv = ext.neuron_forward(x, time_major, decays[0], u_steps, decays[1],
                                                   not u_steps, 3, 0, 5120.3, 1.25, 0, True,
                                                   True, y_double)
                grad = torch.randn(shape, generator=g).to(yv.dtype)
                for surrogate in (False, True):
                    for grid in (0, 64):
                        args = (time_major, yv, surrogate, 1.25, 0.3, 2.0, grid, decays[0],
                                u_steps, decays[1], not u_steps, y_double, pu, pv)
                        cpu = ext.neuron_backward(grad, *args)
                        dev = gpu.neuron_backward(grad.to(device), *(
                            a.to(device) if torch.is_tensor(a) else a for a in args))
                        cases += 1
                        if surrogate:
                            surrogate_max = max(surrogate_max, max(
                                float((a - b.cpu()).abs().max()) for a, b in zip(cpu, dev,
                                                                                 strict=True)))
                        elif not all(_equal(a, b) for a, b in zip(cpu, dev, strict=True)):
                            failed.append(f"backward tm={time_major} {x_dtype} grid={grid}")
    return {"pass": not failed, "cases": cases, "failed": failed,
            "surrogate_max_abs_difference_from_cpu": surrogate_max}


def check_training_step(device: str) -> dict[str, Any]:
    """Kernel against the per-step loop on the device: logits and gradients equal."""
    out: dict[str, Any] = {"pass": True}
    for name, shape, tokens in (("dense", (1, 8, 8), ["dense:64"]),
                                ("conv", (1, 12, 12), ["conv:8:k3", "pool:2", "flatten",
                                                       "dense:16"])):
        neuron = NeuronSpec(threshold=1.25, current_decay=0.25, voltage_decay=0.03, sigma=1.0,
                            learn_decay=True)
        spec = network_from_tokens(shape, tokens, 10, neuron, EncodingSpec(timesteps=16))
        x = torch.rand(32, *shape, generator=torch.Generator().manual_seed(2)).to(device)
        y = (torch.arange(32) % 10).to(device)

        def step(spec: Any = spec, x: torch.Tensor = x, y: torch.Tensor = y) -> list:
            torch.manual_seed(0)
            net = SpikingNetwork(spec, seed=0).to(device)
            logits = net(x)
            F.cross_entropy(logits, y).backward()
            return [logits.detach()] + [p.grad for p in net.parameters() if p.grad is not None]

        fused = step()
        with kernel.loop_only():
            loop = step()
        same = len(fused) == len(loop) and all(
            _equal(a, b) for a, b in zip(fused, loop, strict=True))
        out[name] = {"equal": same, "tensors": len(fused),
                     "spikes_out": float(fused[0].abs().sum())}
        out["pass"] = out["pass"] and same
    return out


def check_train(device: str, work: Path) -> dict[str, Any]:
    """``randhet train`` for 2 epochs on the device (a subprocess, as a user runs it)."""
    command = [sys.executable, "-m", "randhet", "train", "--config",
               str(ROOT / "configs" / "digits.toml"), "--out", str(work / "train"), "--quiet",
               "--set", "train.epochs=2", "--set", f"train.device={device}"]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    seconds, proc = harness.timed(lambda: subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": path}))
    out: dict[str, Any] = {"pass": proc.returncode == 0, "seconds": seconds}
    metrics = work / "train" / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        out |= {k: m[k] for k in ("device", "best_val_accuracy", "epochs")}
    else:
        out["stderr_tail"] = proc.stderr[-2000:]
    out["nccl"] = ("two GPUs here: run `torchrun --nproc_per_node 2 -m randhet train ...`"
                   if torch.cuda.device_count() >= 2 else
                   f"not run: {torch.cuda.device_count()} GPU(s), NCCL needs one per process")
    return out


def check_speed(device: str, quick: bool) -> list[dict[str, Any]]:
    # reason: imports lava-dl's SLAYER and the peers: only for this check
    from training_steps import NETWORKS, bench, report

    warmup, rounds = (1, 3) if quick else (5, 31)
    results = []
    for name, (shape, tokens) in NETWORKS.items():
        results.append(bench(name, shape, tokens, 1, warmup, rounds, device))
        report(results[-1:])
    return results


def attempt(check: Any) -> Any:
    """``check()``, or its error recorded as a failed check (the next check still runs)."""
    try:
        return check()
    except Exception as err:  # noqa: BLE001 - record it and go on to the next check
        return {"pass": False, "error": f"{type(err).__name__}: {err}"[:2000]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script")
    ap.add_argument("--out", type=Path, default=harness.RESULTS / "gpu_check.json")
    ap.add_argument("--quick", action="store_true", help="few timing rounds")
    ap.add_argument("--skip", default="", help="checks to leave out, e.g. train,speed")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here", file=sys.stderr)
        return 2
    if args.device == "cpu":
        os.environ["RANDHET_KERNEL"] = "triton"  # the Triton kernel on CPU tensors
    info = harness.machine()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        import triton  # reason: its version, for the record

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    result: dict[str, Any] = {"machine": info, "device": args.device}
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        checks = {"direct": lambda: check_direct(args.device),
                  "training step": lambda: check_training_step(args.device),
                  "train": lambda: check_train(args.device, Path(tmp)),
                  "speed": lambda: check_speed(args.device, args.quick)}
        for name, run in checks.items():
            if name.split()[0] in skip:
                continue
            seconds, result[name] = harness.timed(lambda run=run: attempt(run))
            print(f"{name}: {seconds:.1f} s: {json.dumps(result[name])[:600]}", flush=True)
            harness.write_json(args.out, result)  # each check as it ends
    failed = [k for k, v in result.items() if isinstance(v, dict) and v.get("pass") is False]
    print(f"wrote {args.out}; " + (f"FAILED: {', '.join(failed)}" if failed else "all passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
