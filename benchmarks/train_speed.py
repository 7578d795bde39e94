"""Training speed of RandHet blocks against stock lava-dl SLAYER CUBA blocks, and time per epoch.

Run by hand (not a test)::

    .venv/bin/python benchmarks/train_speed.py            # full run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/train_speed.py --quick    # fewer repetitions, MNIST epoch
                                                          # extrapolated from 50 batches

Part 1 times one training step (forward, backward, plain SGD step) of the same network built
twice in one process: from stock ``lava.lib.dl.slayer.block.cuba`` blocks (``delay_shift=False``,
stock ``cuba.Neuron`` with :func:`slayer_neuron_params`) and from randhet's RandHet blocks
(``sigma = 1``: fresh per-sample, per-neuron decays every forward pass). Both get the same
weights, the same input batch and the same labels; after a warm-up the variants run interleaved
(stock, randhet, randhet ``resample="step"``, stock, ...) so that background load hits them
alike. The target of the issue is a randhet/stock ratio of the median step time <= 1.15.

Timings use one torch thread by default (``--threads``): on a small machine that other jobs
share, two OpenMP threads per process make single steps swing by up to 10x, which no
interleaving evens out; with one thread the steps are far steadier. Absolute
times still grow with the machine's load (printed, and saved with the results); the table also
gives the process's CPU time per step, which waiting for a core does not inflate.

Part 2 times training epochs: one real epoch of the default digits configuration through
:func:`randhet.train.trainer.train_epoch`, and an MNIST-sized synthetic epoch (60,000 random
28x28 images, 784-128-10 RandHet network, batch 64), extrapolated from a number of batches
when a full epoch would take too long (the output says so).

Prints a table and writes ``benchmarks/results/train_speed.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
import torch.nn.functional as F
from training_steps import (
    BATCH,
    LR,
    NETWORKS,
    NOISY_IQR,
    SEED,
    STEPS,
    copy_weights,
    layer_list,
    make_batch,
    randhet_network,
    stock_network,
)

from randhet.config import load_config, network_spec
from randhet.data import Splits, load_dataset
from randhet.layer_tokens import network_from_tokens
from randhet.models.spiking import SpikingNetwork
from randhet.spec import EncodingSpec, FlattenSpec, NeuronSpec
from randhet.train import trainer

RESULTS = harness.RESULTS / "train_speed.json"
TARGET_RATIO = 1.15
MNIST_FULL_EPOCH_LIMIT_S = 180.0  # a full synthetic MNIST epoch only if it fits in this
MNIST_BATCH = 64
MNIST_SAMPLES = 60_000


# ---------------------------------------------------------------------------------------------
# part 1: step time, stock SLAYER vs RandHet (the networks: training_steps.py)


def train_step(
    net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> float:
    """Forward (spike-count logits), cross-entropy, backward, SGD step; the output spike rate."""
    opt.zero_grad(set_to_none=True)
    spikes = net(x)
    loss = F.cross_entropy(spikes.sum(-1), y)
    loss.backward()
    opt.step()
    return float(spikes.detach().mean())


def bench_network(
    name: str, input_shape: tuple[int, ...], tokens: list[str], warmup: int, rounds: int
) -> dict[str, Any]:
    """Interleaved step times of stock SLAYER, RandHet (forward draws) and RandHet (step draws)."""
    torch.manual_seed(SEED)
    layers = layer_list(input_shape, tokens)
    stock = stock_network(layers, NeuronSpec(sigma=0.0))
    variants: dict[str, torch.nn.Module] = {
        "stock": stock,
        "randhet": randhet_network(layers, NeuronSpec(sigma=1.0), SEED),
        "randhet_step": randhet_network(layers, NeuronSpec(sigma=1.0, resample="step"), SEED),
    }
    for key in ("randhet", "randhet_step"):
        copy_weights(stock, variants[key])
    opts = {k: torch.optim.SGD(net.parameters(), lr=LR) for k, net in variants.items()}
    x, y = make_batch(input_shape, torch.Generator().manual_seed(SEED))
    # interleaved: stock, randhet, randhet_step, stock, ...; wall and this process's CPU time
    t = harness.interleaved({k: (lambda k=k, net=net: train_step(net, opts[k], x, y))
                             for k, net in variants.items()}, rounds, warmup)
    rates: dict[str, float] = t.warmup_results
    times, cpu = t.wall, t.cpu
    med, cpu_med = t.medians(), t.cpu_medians()
    out: dict[str, Any] = {
        "network": name, "input_shape": [BATCH, *input_shape, STEPS],
        "layers": tokens + ["dense:10"], "warmup": warmup, "rounds": rounds,
        "neurons": sum(int(np.prod(ly.out_shape)) for ly in layers
                       if not isinstance(ly, FlattenSpec)),
    }
    for k, v in times.items():
        out[k] = {
            "median_s": med[k], "min_s": min(v), "max_s": max(v),
            "iqr_over_median": harness.iqr_over_median(v),
            "samples_per_s": BATCH / med[k], "output_spike_rate_warmup": rates[k],
            "cpu_median_s": cpu_med[k], "times_s": v, "cpu_times_s": cpu[k],
        }
    for k in ("randhet", "randhet_step"):
        out[f"ratio_{k}"] = med[k] / med["stock"]
        paired = [a / b for a, b in zip(times[k], times["stock"], strict=True)]
        out[f"ratio_{k}_paired_median"] = harness.median(paired)
        out[f"ratio_{k}_cpu"] = cpu_med[k] / cpu_med["stock"]
    out["target"] = TARGET_RATIO
    out["pass"] = out["ratio_randhet"] <= TARGET_RATIO
    return out


# ---------------------------------------------------------------------------------------------
# part 2: time per epoch


def digits_epoch() -> dict[str, Any]:
    """One real epoch of the default digits configuration (trainer internals, Adam)."""
    cfg = load_config(None)
    tc = cfg["train"]
    data = load_dataset(cfg["data"])
    spec = network_spec(cfg, data.input_shape, data.num_classes)
    torch.manual_seed(cfg["seed"])
    model = SpikingNetwork(spec, seed=cfg["seed"])
    opt = trainer.build_optimizer(model, tc)
    state = trainer.TrainState(model, opt, trainer.build_scheduler(opt, tc),
                               np.random.default_rng(cfg["seed"]))
    device = torch.device("cpu")
    seconds, row = harness.timed(
        lambda: trainer.train_epoch(state, data, tc, device, "digits", progress=False))
    n = len(data.x_train)
    return {
        "dataset": "digits (default config, training split)", "samples": n,
        "batch_size": tc["batch_size"], "batches": -(-n // tc["batch_size"]),
        "timesteps": spec.encoding.timesteps, "layers": cfg["model"]["layers"] + ["dense:10"],
        "optimizer": tc["optimizer"], "epoch_s": seconds, "samples_per_s": n / seconds,
        "extrapolated": False, "timed_batches": -(-n // tc["batch_size"]),
        "train_loss": row["train_loss"], "train_accuracy": row["train_accuracy"],
    }


def mnist_epoch(quick: bool) -> dict[str, Any]:
    """A synthetic MNIST-sized epoch (784-128-10 RandHet, T=16, batch 64, Adam)."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.rand((MNIST_SAMPLES, 1, 28, 28), generator=gen).numpy()
    y = torch.randint(0, 10, (MNIST_SAMPLES,), generator=gen).numpy()
    empty = np.zeros((0, 1, 28, 28), np.float32)
    data = Splits(x, y, empty, np.zeros(0, np.int64), empty, np.zeros(0, np.int64), 10,
                  "synthetic-mnist")
    spec = network_from_tokens((1, 28, 28), ["dense:128"], 10,
                                   NeuronSpec(sigma=1.0), EncodingSpec(timesteps=STEPS))
    model = SpikingNetwork(spec, seed=SEED)
    tc = dict(load_config(None)["train"], batch_size=MNIST_BATCH)
    opt = trainer.build_optimizer(model, tc)
    state = trainer.TrainState(model, opt, trainer.build_scheduler(opt, tc),
                               np.random.default_rng(SEED))
    device = torch.device("cpu")
    batches = -(-MNIST_SAMPLES // MNIST_BATCH)
    perm = state.order_rng.permutation(MNIST_SAMPLES)
    model.train()

    def batch_run(first: int, count: int) -> None:
        for b in range(first, first + count):
            idx = perm[b * MNIST_BATCH:(b + 1) * MNIST_BATCH]
            trainer.train_step(state, torch.as_tensor(data.x_train[idx], device=device),
                               torch.as_tensor(data.y_train[idx], device=device), tc)

    def run(first: int, count: int) -> float:
        """Seconds for ``count`` training steps from batch ``first`` on, in a row."""
        return harness.timed(lambda: batch_run(first, count))[0]

    run(0, 3)  # warm-up
    probe_batches = 20
    probe = run(3, probe_batches) / probe_batches
    estimate = probe * batches
    out: dict[str, Any] = {
        "dataset": f"synthetic MNIST ({MNIST_SAMPLES} random 1x28x28 images, random labels)",
        "samples": MNIST_SAMPLES, "batch_size": MNIST_BATCH, "batches": batches,
        "timesteps": STEPS, "layers": ["flatten", "dense:128", "dense:10"],
        "optimizer": tc["optimizer"], "probe_s_per_batch": probe,
    }
    if not quick and estimate <= MNIST_FULL_EPOCH_LIMIT_S:
        seconds, row = harness.timed(
            lambda: trainer.train_epoch(state, data, tc, device, "mnist", progress=False))
        out |= {"epoch_s": seconds, "extrapolated": False, "timed_batches": batches,
                "train_loss": row["train_loss"]}
    else:
        timed = 50 if quick else max(50, min(batches - 23, int(120.0 / probe)))
        seconds = run(23, timed)
        out |= {"epoch_s": seconds / timed * batches, "extrapolated": True,
                "timed_batches": timed, "timed_s": seconds}
    out["samples_per_s"] = MNIST_SAMPLES / out["epoch_s"]
    return out


# ---------------------------------------------------------------------------------------------
# report


def ms(s: float) -> str:
    return f"{s * 1e3:8.1f}"


def print_steps(results: list[dict[str, Any]]) -> None:
    print(f"\nTraining step (forward + backward + SGD), batch {BATCH}, T = {STEPS}; "
          "median over interleaved rounds (wall clock; 'cpu': this process's CPU time)")
    head = (f"{'network':<28} {'variant':<22} {'ms/step':>8} {'samples/s':>10} {'ratio':>6}"
            f" {'cpu ms':>8} {'cpu ratio':>9}")
    print(head)
    print("-" * len(head))
    labels = {"stock": "stock SLAYER cuba", "randhet": "RandHet (forward)",
              "randhet_step": "RandHet (step draws)"}
    for r in results:
        for k, label in labels.items():
            ratio = "" if k == "stock" else f"{r[f'ratio_{k}']:6.2f}"
            cpu_ratio = "" if k == "stock" else f"{r[f'ratio_{k}_cpu']:9.2f}"
            print(f"{r['network']:<28} {label:<22} {ms(r[k]['median_s'])} "
                  f"{r[k]['samples_per_s']:10.0f} {ratio:>6} {ms(r[k]['cpu_median_s'])} "
                  f"{cpu_ratio:>9}")
    noisy = [f"{r['network']} {k}" for r in results for k in labels
             if r[k]["iqr_over_median"] > NOISY_IQR]
    if noisy:
        print(f"WARNING: noisy timings (interquartile range > {NOISY_IQR:.0%} of the median): "
              f"{', '.join(noisy)}; the machine is busy, take the ratios with care")
    for r in results:
        verdict = "PASS" if r["pass"] else "FAIL"
        print(f"{verdict}: {r['network']}: randhet/stock = {r['ratio_randhet']:.3f} "
              f"(target <= {TARGET_RATIO}; paired median {r['ratio_randhet_paired_median']:.3f}, "
              f"CPU time {r['ratio_randhet_cpu']:.3f}, {r['rounds']} rounds); "
              f"resample='step' (no target): {r['ratio_randhet_step']:.3f}")


def print_epochs(epochs: list[dict[str, Any]]) -> None:
    print("\nTime per training epoch (RandHet, Adam, CPU)")
    head = f"{'data':<16} {'samples':>7} {'batch':>5} {'epoch s':>8} {'samples/s':>10}  note"
    print(head)
    print("-" * len(head))
    for e, label in zip(epochs, ("digits", "synthetic MNIST"), strict=True):
        note = (f"EXTRAPOLATED from {e['timed_batches']} of {e['batches']} batches"
                if e["extrapolated"] else f"full epoch ({e['batches']} batches)")
        print(f"{label:<16} {e['samples']:>7} {e['batch_size']:>5} {e['epoch_s']:8.1f} "
              f"{e['samples_per_s']:10.0f}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions; extrapolate the MNIST epoch from 50 batches")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: steadier on a shared machine; 0 = torch's "
             "default, one per core)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    torch.manual_seed(SEED)
    info = harness.machine()
    load_start = harness.loadavg()
    print(f"randhet train speed: {info['date']}, {info['cpu_count']} CPUs, torch {info['torch']}"
          f" ({info['torch_threads']} threads), lava-dl {info['lava_dl']}, load {load_start}")
    t_all = time.perf_counter()
    # (warm-up rounds, timed rounds) per network; a conv round takes ~2.5 s on one thread
    plans = {"dense 64-128-10": (5, 60), "conv 1x28x28 c8s2-c16s2-10": (2, 20)}
    if args.quick:
        plans = {"dense 64-128-10": (3, 10), "conv 1x28x28 c8s2-c16s2-10": (1, 4)}
    steps = []
    for name, (shape, tokens) in NETWORKS.items():
        warmup, rounds = plans[name]
        print(f"  timing {name}: {warmup} warm-up + {rounds} interleaved rounds ...", flush=True)
        steps.append(bench_network(name, shape, tokens, warmup, rounds))
    print("  timing a digits epoch ...", flush=True)
    digits = digits_epoch()
    print("  timing a synthetic MNIST epoch ...", flush=True)
    mnist = mnist_epoch(args.quick)
    load_end = harness.loadavg()

    print_steps(steps)
    print_epochs([digits, mnist])
    print(f"\nload average (1/5/15 min) at start {load_start}, at end {load_end}; "
          f"total {time.perf_counter() - t_all:.0f} s")

    result = {
        "benchmark": "train_speed", "quick": args.quick, "machine": info,
        "loadavg_start": load_start, "loadavg_end": load_end,
        "step": {"batch": BATCH, "timesteps": STEPS, "optimizer": f"SGD(lr={LR})",
                 "target_ratio": TARGET_RATIO, "networks": steps},
        "epoch": {"digits": digits, "synthetic_mnist": mnist},
        "total_s": time.perf_counter() - t_all,
    }
    harness.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
