"""One training step in randhet against its peers and the matmul-only floor.

Run by hand (not a test), from the repository root, after ``make bench-setup`` (Norse and
SpikingJelly, benchmark-only)::

    .venv/bin/python benchmarks/peers.py                 # 1 and 2 threads, a few minutes
    .venv/bin/python benchmarks/peers.py --quick         # fewer rounds, 1 thread

Every variant trains the same network one step (forward, cross-entropy on the output spike
counts, backward, plain SGD) on the same batch (64 samples, T = 16, graded input on a 1/16
grid) in one process, the variants interleaved round by round so that background load hits them
alike. Each variant gets the batch stored as it reads it best, prepared before the clock
starts: the peers and the floor time major ([T, B, ..]); randhet the same storage seen as
its [B, .., T] tensors (what its layers hand each other); SLAYER contiguous [B, .., T].
Networks: dense 64-128-10, and the conv net of ``train_speed.py`` (1x28x28, conv 8 s2,
conv 16 s2, dense 10). Variants:

- ``randhet``: RandHet blocks (sigma 1, per-neuron decays drawn every pass) with the kernel
  extension (:mod:`randhet.kernel`: the fused CUBA kernel, the one-call draws and weight hook,
  the convolution node); ``randhet (loop)``: the same with the extension off, so the
  per-step loop and torch's conv2d (what randhet ran before the kernel);
- ``SLAYER``: stock lava-dl CUBA blocks (``delay_shift=False``);
- ``snnTorch``: ``snn.Synaptic`` (CUBA) stepped in a Python loop, the synapse per step (its
  documented use);
- ``Norse``: ``norse.torch.LIF`` (CUBA) over the whole sequence, the synapse on all steps at once;
- ``SpikingJelly``: multi-step ``LIFNode`` (SpikingJelly 2.0's default implementation on the
  CPU) and multi-step layers (not CUBA: one state);
- ``floor``: the same synapses on all B x T inputs at once with ReLU, no neuron state: the
  matmul-only floor.

Targets (issue 15): randhet at least 3x faster than the fastest peer, and within 3x of the floor.
Prints a table and PASS/FAIL per target, writes ``benchmarks/results/peers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import harness
from training_steps import NETWORKS, bench, report

from randhet import kernel

RESULTS = harness.RESULTS / "peers.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, 1 thread")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, e.g. 1,2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not kernel.available():
        print("the fused kernel is not available here: randhet runs its loop", file=sys.stderr)
    threads = [1] if args.quick else [int(t) for t in args.threads.split(",")]
    warmup, rounds = (2, 7) if args.quick else (3, 21)
    start = harness.machine()
    results = []
    with contextlib.suppress(KeyboardInterrupt):
        for n in threads:
            for name, (shape, tokens) in NETWORKS.items():
                results.append(bench(name, shape, tokens, n, warmup, rounds))
                report(results[-1:])
    harness.write_json(args.out, {"machine": start, "load_at_end": harness.loadavg(),
                                  "kernel": kernel.available(), "results": results})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
