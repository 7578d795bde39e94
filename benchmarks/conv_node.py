"""The convolution synapse's node (``randhet/csrc/conv.cpp``) against torch's conv2d.

Run by hand (not a test), from the repository root::

    .venv/bin/python benchmarks/conv_node.py          # 1 and 2 threads, under a minute

Times the two convolutions of ``train_speed.py``'s conv network as a training step runs them:
all B x T = 64 x 16 frames at once, the first layer on graded input (1/16 grid) with no input
gradient, the second on spikes with one; the forward alone (no gradient), and the forward and
backward. torch's conv2d (oneDNN on this CPU) and the node run interleaved round by round on
the same tensors. Writes ``benchmarks/results/conv_node.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import torch
import torch.nn.functional as F

from randhet import kernel

RESULTS = harness.RESULTS / "conv_node.json"
FRAMES = 64 * 16  # batch x T
# name -> (in channels, out channels, size, kernel, stride, padding, input gradient)
LAYERS = {
    "conv 1->8, 28x28, k3 s2": (1, 8, 28, 3, 2, 1, False),
    "conv 8->16, 14x14, k3 s2": (8, 16, 14, 3, 2, 1, True),
}


def step(conv: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor,
         g: torch.Tensor, stride: int, padding: int, backward: bool) -> Callable[[], None]:
    def run() -> None:
        x.grad = w.grad = None
        if backward:
            conv(x, w, stride, padding).backward(g)
        else:
            with torch.no_grad():
                conv(x, w, stride, padding)
    return run


def torch_conv(x: torch.Tensor, w: torch.Tensor, s: int, p: int) -> torch.Tensor:
    return F.conv2d(x, w, None, s, p)


def node_conv(x: torch.Tensor, w: torch.Tensor, s: int, p: int) -> torch.Tensor:
    z = kernel.conv2d(x, w, None, (s, s), (p, p), (1, 1), 1)
    assert z is not None
    return z


def bench(threads: int, rounds: int) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    out = []
    for name, (cin, cout, size, k, stride, padding, need_dx) in LAYERS.items():
        if need_dx:  # spikes
            x = (torch.rand(FRAMES, cin, size, size, generator=gen) < 0.2).float()
        else:  # graded input on a 1/16 grid
            x = torch.round(torch.rand(FRAMES, cin, size, size, generator=gen) * 16) / 16
        x.requires_grad_(need_dx)
        w = (torch.round(torch.randn(cout, cin, k, k, generator=gen) * 32) / 64).requires_grad_()
        out_size = (size + 2 * padding - k) // stride + 1
        g = torch.randn(FRAMES, cout, out_size, out_size, generator=gen)
        variants = {f"{conv} {part}": step(fn, x, w, g, stride, padding, part == "fwd+bwd")
                    for part in ("fwd", "fwd+bwd")
                    for conv, fn in (("torch", torch_conv), ("node", node_conv))}
        med = harness.interleaved(variants, rounds, warmup=2).medians()
        row = {"layer": name, "threads": threads, "rounds": rounds, "median_s": med,
               "speedup_fwd": med["torch fwd"] / med["node fwd"],
               "speedup_fwd_bwd": med["torch fwd+bwd"] / med["node fwd+bwd"]}
        out.append(row)
        print(f"{name}, {threads} thread(s), ms: forward torch {med['torch fwd'] * 1e3:.2f}, "
              f"node {med['node fwd'] * 1e3:.2f} ({row['speedup_fwd']:.2f}x); forward and "
              f"backward torch {med['torch fwd+bwd'] * 1e3:.2f}, node "
              f"{med['node fwd+bwd'] * 1e3:.2f} ({row['speedup_fwd_bwd']:.2f}x)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", default="1,2", help="torch thread counts, e.g. 1,2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not kernel.available():
        print("the kernel extension is not built here: nothing to compare", file=sys.stderr)
        raise SystemExit(2)
    start = harness.machine()
    results = []
    for n in (int(t) for t in args.threads.split(",")):
        results += bench(n, args.rounds)
    harness.write_json(args.out, {"machine": start, "load_at_end": harness.loadavg(),
                                  "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
