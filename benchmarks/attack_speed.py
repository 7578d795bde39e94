"""PGD-EOT speed: EOT draws batched into one pass against a naive loop of passes.

Run by hand (not a test)::

    .venv/bin/python benchmarks/attack_speed.py             # trains digits for 2 epochs first
    .venv/bin/python benchmarks/attack_speed.py --run runs/demo   # an existing run folder

The network is the default digits configuration (64-128-10 RandHet dense, T = 16, sigma = 1),
trained for ``--epochs`` epochs (2 by default: speed does not depend on accuracy). The attack
is L-inf PGD, eps = 0.1, 10 steps, EOT over 20 draws per step, on ``--batch`` test images:

- ``batched``: :class:`randhet.attack.pgd.PGD`; the batch is replicated 20 times and run as
  one forward/backward pass per step (every replica gets its own decay draw);
- ``loop``: the same attack with the EOT gradient taken the naive way, one forward/backward
  pass per draw (what torchattacks' ``eot_iter`` does), averaged: the same math;
- ``scan_loop``: ``batched`` with the neurons' per-step loop instead of the fused kernel
  (:mod:`randhet.kernel`): randhet before the kernel. Target: ``batched`` >= 3x its samples/s.

The process keeps its freed memory as the randhet command line does
(:func:`randhet.allocator.keep_freed_memory`); ``--malloc system`` keeps glibc's defaults, which
is how randhet ran before (run both to compare them). The variants run in one process on the
same inputs, interleaved after a warm-up, with 1 torch thread
and with torch's default count (``--threads``); the script first checks on the sigma = 0 twin
(deterministic) that both give the same adversarial inputs. Prints wall-clock samples/second
of each, the process CPU time, and the ratios; writes ``benchmarks/results/attack_speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import torch
import torch.nn.functional as F

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet import kernel
from randhet.allocator import keep_freed_memory
from randhet.attack.pgd import PGD
from randhet.config import load_config
from randhet.data import load_dataset
from randhet.models.spiking import SpikingNetwork
from randhet.runs import open_run
from randhet.train.trainer import train

RESULTS = harness.RESULTS / "attack_speed.json"
CONFIG = harness.ROOT / "configs" / "digits.toml"
EPS, STEPS, EOT = 0.1, 10, 20
KERNEL_TARGET = 3.0  # issue 15: PGD-10 with EOT 20, 3x the samples/s of the per-step scan


class LoopedPGD(PGD):
    """PGD whose EOT gradient loops over the draws: one forward/backward pass each."""

    def loss_and_grad(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        loss_sum = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        grad_sum = torch.zeros_like(x)
        for _ in range(self.eot):
            loss = F.cross_entropy(self.model(x), y, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), x)
            loss_sum += loss.detach()
            grad_sum += grad
        return loss_sum / self.eot, grad_sum / self.eot


def sigma0_twin(model: SpikingNetwork) -> SpikingNetwork:
    spec = model.spec
    twin = SpikingNetwork(dataclasses.replace(spec, neuron=dataclasses.replace(spec.neuron,
                                                                               sigma=0.0)))
    twin.load_state_dict(model.state_dict())
    return twin


def run_attack(attack: PGD, x: torch.Tensor, y: torch.Tensor, fused: bool = True) -> None:
    """One attack call; ``fused``: the neurons run the fused kernel, else the per-step loop."""
    with contextlib.nullcontext() if fused else kernel.loop_only():
        attack(x, y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="trained run folder (default: train digits)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs when training here")
    parser.add_argument("--batch", type=int, default=64, help="test images per attack call")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--threads", type=int, nargs="+", default=[],
                        help="torch thread counts to time (default: 1 and torch's default)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--malloc", choices=["kept", "system"], default="kept",
                        help="kept: freed memory kept for reuse, as the command line does; "
                             "system: glibc's defaults")
    args = parser.parse_args(argv)
    kept = args.malloc == "kept" and keep_freed_memory()

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "digits"
            print(f"training digits for {args.epochs} epochs ...", flush=True)
            train(load_config(CONFIG, [f"train.epochs={args.epochs}"]), run, progress=False)
        model = open_run(run).model()
        data = load_dataset(load_config(run / "config.toml")["data"])
    x = torch.as_tensor(data.x_test[:args.batch])
    y = torch.as_tensor(data.y_test[:args.batch])
    opts = {"eps": EPS, "eot": EOT, "steps": STEPS, "seed": 0}

    twin = sigma0_twin(model)  # deterministic: both variants must agree exactly
    same = torch.equal(PGD(twin, **opts)(x, y), LoopedPGD(twin, **opts)(x, y))

    # name -> (attack, fused kernel): "scan_loop" is the batched attack as randhet ran it
    # before the kernel (the neurons' per-step loop); the target is 3x its throughput
    variants = {"batched": (PGD(model, **opts), True), "scan_loop": (PGD(model, **opts), False),
                "loop": (LoopedPGD(model, **opts), True)}
    threads = args.threads or sorted({1, torch.get_num_threads()})
    # interleaved: batched@1, scan_loop@1, loop@1, batched@2, ...; one warm-up round
    calls = {f"{k}@{n}": (lambda a=attack, f=fused: run_attack(a, x, y, f))
             for n in threads for k, (attack, fused) in variants.items()}
    load_start = harness.loadavg()
    t = harness.interleaved(calls, args.rounds, warmup=1,
                            before=lambda key, _: torch.set_num_threads(int(key.split("@")[1])))
    load_end = harness.loadavg()
    wall, cpu = t.wall, t.cpu

    med = t.medians()
    cpu_med = t.cpu_medians()
    rate = {k: len(x) / m for k, m in med.items()}
    ratio = {n: rate[f"batched@{n}"] / rate[f"loop@{n}"] for n in threads}
    kernel_ratio = {n: rate[f"batched@{n}"] / rate[f"scan_loop@{n}"] for n in threads}
    cpu_ratio = {n: cpu_med[f"loop@{n}"] / cpu_med[f"batched@{n}"] for n in threads}
    print(f"PGD-EOT on digits (T = {model.spec.encoding.timesteps}, layers "
          f"{[ly.out_shape for ly in model.spec.spiking_layers]}), eps {EPS}, {STEPS} PGD steps, "
          f"eot {EOT}, batch {len(x)}, CPU; median of {args.rounds} interleaved rounds")
    print(f"  {'variant':<10} {'threads':>7} {'s/call':>7} {'samples/s':>10} {'CPU s':>7}")
    for key in wall:
        k, n = key.split("@")
        print(f"  {k:<10} {n:>7} {med[key]:7.2f} {rate[key]:10.1f} {cpu_med[key]:7.2f}")
    for n in threads:
        print(f"  {n} thread(s): batched / loop throughput {ratio[n]:.2f}x "
              f"(CPU time loop / batched {cpu_ratio[n]:.2f}x); fused kernel / per-step scan "
              f"{kernel_ratio[n]:.2f}x (target >= {KERNEL_TARGET:g}: "
              f"{'PASS' if kernel_ratio[n] >= KERNEL_TARGET else 'FAIL'})")
    print(f"  identical results on the sigma = 0 twin: {same}; freed memory kept: {kept}; "
          f"load {load_start} -> {load_end}")

    result: dict[str, Any] = {
        "benchmark": "attack_speed",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {**harness.machine(), "threads": threads, "device": "cpu"},
        "network": {"config": "configs/digits.toml", "epochs": None if args.run else args.epochs,
                    "run": str(args.run) if args.run else None,
                    "timesteps": model.spec.encoding.timesteps,
                    "layers": [list(ly.out_shape) for ly in model.spec.spiking_layers],
                    "sigma": model.spec.neuron.sigma},
        "attack": {"name": "pgd", "eps": EPS, "steps": STEPS, "eot": EOT, "batch": len(x),
                   "random_start": True},
        "rounds": args.rounds, "wall_s": wall, "cpu_s": cpu, "median_s": med,
        "samples_per_s": rate, "ratio_batched_over_loop": {str(n): r for n, r in ratio.items()},
        "fused_kernel": kernel.available(), "malloc": args.malloc, "freed_memory_kept": kept,
        "ratio_kernel_over_scan_loop": {str(n): r for n, r in kernel_ratio.items()},
        "kernel_target": KERNEL_TARGET,
        "cpu_ratio_loop_over_batched": {str(n): r for n, r in cpu_ratio.items()},
        "identical_on_sigma0_twin": same, "loadavg_start": load_start, "loadavg_end": load_end,
    }
    harness.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
