"""The emulator against its own matmul floor: the same synaptic operations with no neurons.

Run by hand (not a test), from the repository root::

    .venv/bin/python benchmarks/emulator_floor.py          # about a minute on 2 cores

Trains the default digits network (64-128-10, T = 16) and the digits conv network
(``configs/digits-conv.toml``) for one epoch each (speed does not depend on accuracy), exports
them and prepares every test sample's integer input and decay draw as ``deploy()`` does. Then,
interleaved in one process with one torch thread:

- ``emulator``: :func:`randhet.deploy.emulator.emulate`, the fused kernel (the neurons' scan);
- ``emulator (loop)``: the same with the per-step loop (:func:`randhet.kernel.loop_only`);
- ``floor``: only the emulator's synapses (:func:`randhet.deploy.emulator.synapse`), each layer
  fed the spikes the emulator recorded for the layer below: the same synaptic operations.

Target (issue 15): the emulator within 3x of the floor. Writes
``benchmarks/results/emulator_floor.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import torch
from deploy_nets import build, prepare

from randhet import kernel
from randhet.deploy.emulator import emulate, synapse

RESULTS = harness.RESULTS / "emulator_floor.json"
TARGET = 3.0
NETS = {"dense 64-128-10": [], "digits conv": ["model.layers=[\"conv:16:s2\",\"conv:32:s2\","
                                                "\"dense:128\"]"]}


def in_mode(fn: Callable[[], Any], loop: bool) -> Callable[[], None]:
    """``fn`` run with the neurons' per-step loop (``loop``) or with the fused kernel."""
    def run() -> None:
        with kernel.loop_only() if loop else contextlib.nullcontext():
            fn()
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = harness.machine()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in NETS.items():
            net, _ = build(name.split()[0], overrides, Path(tmp))
            inputs, draws = prepare(net, 10**6)
            shift = net.spec.encoding.input_shift
            rasters = emulate(net, inputs, draws, batch_size=len(inputs)).rasters
            layer_inputs = [torch.as_tensor(inputs, dtype=torch.int64)] + [
                torch.as_tensor(r) for r in rasters[:-1]]

            def floor(net=net, layer_inputs=layer_inputs, shift=shift) -> None:
                for k, (layer, s) in enumerate(zip(net.layers, layer_inputs, strict=True)):
                    synapse(layer, s, -shift if k == 0 else 0)

            variants = {
                "emulator": lambda net=net, i=inputs, d=draws: emulate(net, i, d, len(i)),
                "emulator (loop)": lambda net=net, i=inputs, d=draws: emulate(net, i, d, len(i)),
                "floor": floor,
            }
            t = harness.interleaved({k: in_mode(fn, "loop" in k) for k, fn in variants.items()},
                                    args.rounds, warmup=1)  # the first round warms up
            wall, med = t.wall, t.medians()
            row = {"network": name, "samples": len(inputs),
                   "timesteps": net.spec.encoding.timesteps,
                   "median_s": med, "wall_s": wall,
                   "over_floor": med["emulator"] / med["floor"],
                   "loop_over_floor": med["emulator (loop)"] / med["floor"],
                   "kernel_speedup": med["emulator (loop)"] / med["emulator"]}
            row["pass"] = row["over_floor"] <= TARGET
            results.append(row)
            print(f"{name}: {len(inputs)} samples, T = {row['timesteps']}; median of "
                  f"{args.rounds} rounds, 1 thread")
            for k, m in med.items():
                print(f"  {k:<16} {m * 1e3:9.1f} ms  {len(inputs) / m:9.0f} samples/s  "
                      f"{m / med['floor']:5.2f}x floor")
            print(f"  emulator {row['over_floor']:.2f}x the floor (target <= {TARGET:g}: "
                  f"{'PASS' if row['pass'] else 'FAIL'}); kernel {row['kernel_speedup']:.2f}x "
                  "the loop")
    harness.write_json(args.out, {"machine": start, "load_at_end": harness.loadavg(),
                                  "kernel": kernel.available(), "target": TARGET,
                                  "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
