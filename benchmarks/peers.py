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
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from machine import loadavg, machine  # noqa: E402  (benchmarks/machine.py)
from train_speed import (  # noqa: E402  (benchmarks/train_speed.py)
    BATCH,
    LR,
    NETWORKS,
    STEPS,
    copy_weights,
    layer_list,
    make_batch,
    randhet_network,
    stock_network,
)

from randhet import kernel  # noqa: E402
from randhet.spec import ConvSpec, DenseSpec, FlattenSpec, LayerSpec, NeuronSpec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "peers.json"
SEED = 0
NEURON = NeuronSpec(sigma=1.0)  # threshold 1.25, current decay 0.25, voltage decay 0.03
PEER_TARGET = 3.0  # randhet at least this many times faster than the fastest peer
FLOOR_TARGET = 3.0  # randhet within this many times the floor
NOISY_IQR = 0.25

Step = Callable[[], None]


def synapses(layers: tuple[LayerSpec, ...]) -> list[torch.nn.Module]:
    """Plain torch synapses (no bias) for the layer list; Flatten for flatten."""
    mods: list[torch.nn.Module] = []
    for ly in layers:
        if isinstance(ly, FlattenSpec):
            mods.append(torch.nn.Flatten())
        elif isinstance(ly, ConvSpec):
            mods.append(torch.nn.Conv2d(ly.in_shape[0], ly.out_channels, ly.kernel,
                                        stride=ly.stride, padding=ly.padding, groups=ly.groups,
                                        bias=False))
        elif isinstance(ly, DenseSpec):
            mods.append(torch.nn.Linear(ly.in_features, ly.out_features, bias=False))
    return mods


def _sgd_step(params: list[torch.nn.Parameter], loss_of: Callable[[], torch.Tensor]) -> Step:
    opt = torch.optim.SGD(params, lr=LR)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_of().backward()
        opt.step()
    return step


def randhet_step(layers: tuple[LayerSpec, ...], x: torch.Tensor, y: torch.Tensor,
                 stock: torch.nn.Module, loop: bool) -> Step:
    net = randhet_network(layers, NEURON, SEED).to(x.device)
    copy_weights(stock, net)
    inner = _sgd_step(list(net.parameters()), lambda: F.cross_entropy(net(x).sum(-1), y))
    if not loop:
        return inner

    def step() -> None:
        with kernel.loop_only():
            inner()
    return step


def slayer_step(stock: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Step:
    return _sgd_step(list(stock.parameters()), lambda: F.cross_entropy(stock(x).sum(-1), y))


def snntorch_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    import snntorch as snn  # reason: benchmark-only dependency

    syn = torch.nn.ModuleList(synapses(layers)).to(xt.device)
    lifs = [snn.Synaptic(alpha=1 - NEURON.current_decay, beta=1 - NEURON.voltage_decay,
                         threshold=NEURON.threshold).to(xt.device)
            if not isinstance(m, torch.nn.Flatten) else None for m in syn]

    def loss() -> torch.Tensor:
        state = [lif.reset_mem() if lif is not None else None for lif in lifs]
        counts = 0
        for t in range(xt.shape[0]):
            h = xt[t]
            for k, (m, lif) in enumerate(zip(syn, lifs, strict=True)):
                h = m(h)
                if lif is not None:
                    h, s_syn, s_mem = lif(h, *state[k])
                    state[k] = (s_syn, s_mem)
            counts = counts + h
        return F.cross_entropy(counts, y)
    return _sgd_step(list(syn.parameters()), loss)


def norse_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    import norse.torch as norse  # reason: benchmark-only dependency

    p = norse.LIFParameters(tau_syn_inv=torch.as_tensor(NEURON.current_decay),
                            tau_mem_inv=torch.as_tensor(NEURON.voltage_decay),
                            v_th=torch.as_tensor(NEURON.threshold))
    syn = torch.nn.ModuleList(synapses(layers)).to(xt.device)
    lifs = torch.nn.ModuleList(torch.nn.Identity() if isinstance(m, torch.nn.Flatten)
                               else norse.LIF(p, dt=1.0) for m in syn).to(xt.device)

    def loss() -> torch.Tensor:
        h = xt
        for m, lif in zip(syn, lifs, strict=True):
            t, b = h.shape[:2]
            h = m(h.reshape(t * b, *h.shape[2:]))
            h = h.reshape(t, b, *h.shape[1:])
            if not isinstance(lif, torch.nn.Identity):
                h, _ = lif(h)
        return F.cross_entropy(h.sum(0), y)
    return _sgd_step(list(syn.parameters()), loss)


def spikingjelly_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    from spikingjelly.activation_based import functional, layer, neuron  # reason: benchmark-only

    mods: list[torch.nn.Module] = []
    for m in synapses(layers):
        if isinstance(m, torch.nn.Flatten):
            mods.append(layer.Flatten(step_mode="m"))
            continue
        mods.append(layer.SeqToANNContainer(m))
        mods.append(neuron.LIFNode(v_threshold=NEURON.threshold, step_mode="m"))
    net = torch.nn.Sequential(*mods).to(xt.device)

    def loss() -> torch.Tensor:
        functional.reset_net(net)
        return F.cross_entropy(net(xt).sum(0), y)
    return _sgd_step(list(net.parameters()), loss)


def floor_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    syn = torch.nn.ModuleList(synapses(layers)).to(xt.device)

    def loss() -> torch.Tensor:
        t, b = xt.shape[:2]
        h = xt.reshape(t * b, *xt.shape[2:])
        for m in syn:
            h = m(h) if isinstance(m, torch.nn.Flatten) else torch.relu(m(h))
        return F.cross_entropy(h.reshape(t, b, -1).sum(0), y)
    return _sgd_step(list(syn.parameters()), loss)


def variants(input_shape: tuple[int, ...], tokens: list[str], device: str = "cpu",
             missing: list[str] | None = None) -> dict[str, Step]:
    """Every variant's training step on one shared batch on ``device``; a peer that is not
    installed is left out (its name appended to ``missing``)."""
    torch.manual_seed(SEED)
    layers = layer_list(input_shape, tokens)
    x, y = make_batch(input_shape, torch.Generator().manual_seed(SEED))  # [B, *shape, T]
    x, y = x.to(device), y.to(device)
    xt = x.movedim(-1, 0).contiguous()  # [T, B, *shape]
    x_randhet = xt.movedim(0, -1)  # [B, *shape, T], stored time major
    stock = stock_network(layers, NeuronSpec(sigma=0.0)).to(device)
    out = {
        "randhet": randhet_step(layers, x_randhet, y, stock, loop=False),
        "randhet (loop)": randhet_step(layers, x_randhet, y, stock, loop=True),
        "SLAYER": slayer_step(stock, x, y),
    }
    for name, make in (("snnTorch", snntorch_step), ("Norse", norse_step),
                       ("SpikingJelly", spikingjelly_step)):
        try:
            out[name] = make(layers, xt, y)
        except ImportError:
            if missing is not None:
                missing.append(name)
    out["floor"] = floor_step(layers, xt, y)
    return out


PEERS = ("SLAYER", "snnTorch", "Norse", "SpikingJelly")


def bench(name: str, input_shape: tuple[int, ...], tokens: list[str], threads: int, warmup: int,
          rounds: int, device: str = "cpu") -> dict[str, Any]:
    """Median times of every variant's step, interleaved round by round (on CUDA each step
    ends with a synchronize, so that its kernels are timed)."""
    torch.set_num_threads(threads)
    missing: list[str] = []
    steps = variants(input_shape, tokens, device, missing)
    if device.startswith("cuda"):
        steps = {k: _synchronized(step) for k, step in steps.items()}
    for _ in range(warmup):
        for step in steps.values():
            step()
    wall: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            c0, t0 = time.process_time(), time.perf_counter()
            step()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    out: dict[str, Any] = {"network": name, "device": device, "threads": threads,
                           "batch": BATCH, "steps": STEPS, "warmup": warmup, "rounds": rounds,
                           "not_installed": missing, "variants": {}}
    for k, v in wall.items():
        q1, med, q3 = statistics.quantiles(v, n=4)
        out["variants"][k] = {"median_s": statistics.median(v), "iqr_over_median": (q3 - q1) / med,
                              "cpu_median_s": statistics.median(cpu[k]),
                              "samples_per_s": BATCH / statistics.median(v)}
    med = {k: v["median_s"] for k, v in out["variants"].items()}
    fastest = min((p for p in PEERS if p in med), key=med.__getitem__)
    out["fastest_peer"] = fastest
    out["speedup_over_fastest_peer"] = med[fastest] / med["randhet"]
    out["over_floor"] = med["randhet"] / med["floor"]
    out["kernel_speedup_over_loop"] = med["randhet (loop)"] / med["randhet"]
    out["pass_peer"] = out["speedup_over_fastest_peer"] >= PEER_TARGET
    out["pass_floor"] = out["over_floor"] <= FLOOR_TARGET
    return out


def _synchronized(step: Step) -> Step:
    def run() -> None:
        step()
        torch.cuda.synchronize()
    return run


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\n{r['network']}, {r['threads']} thread(s): one training step, batch {r['batch']}, "
              f"T = {r['steps']}, median of {r['rounds']} interleaved rounds")
        print(f"{'variant':<16} {'ms/step':>8} {'cpu ms':>8} {'samples/s':>10} {'x floor':>8}")
        floor = r["variants"]["floor"]["median_s"]
        for k, v in r["variants"].items():
            noisy = "  (noisy)" if v["iqr_over_median"] > NOISY_IQR else ""
            print(f"{k:<16} {v['median_s'] * 1e3:8.2f} {v['cpu_median_s'] * 1e3:8.2f} "
                  f"{v['samples_per_s']:10.0f} {v['median_s'] / floor:8.2f}{noisy}")
        if r.get("not_installed"):
            print(f"not installed here: {', '.join(r['not_installed'])}")
        print(f"kernel over loop: {r['kernel_speedup_over_loop']:.2f}x; fastest peer "
              f"{r['fastest_peer']}: randhet {r['speedup_over_fastest_peer']:.2f}x faster "
              f"(target >= {PEER_TARGET:g}: {'PASS' if r['pass_peer'] else 'FAIL'}); "
              f"randhet {r['over_floor']:.2f}x the floor (target <= {FLOOR_TARGET:g}: "
              f"{'PASS' if r['pass_floor'] else 'FAIL'})")


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
    start = machine()
    results = []
    with contextlib.suppress(KeyboardInterrupt):
        for n in threads:
            for name, (shape, tokens) in NETWORKS.items():
                results.append(bench(name, shape, tokens, n, warmup, rounds))
                report(results[-1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": start, "load_at_end": loadavg(),
                                    "kernel": kernel.available(), "results": results},
                                   indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
