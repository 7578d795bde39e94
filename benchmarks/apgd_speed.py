"""APGD with EOT: randhet's own (one batched pass of all EOT draws per step, every decision on
the EOT-mean loss) against torchattacks' APGD with ``eot_iter`` (one pass per draw), on the
same model, samples and budget.

Run by hand (not a test)::

    .venv/bin/python benchmarks/apgd_speed.py                 # trains digits for 2 epochs first
    .venv/bin/python benchmarks/apgd_speed.py --run runs/demo # an existing run folder

Both run APGD-CE, L-inf eps = 0.1, ``--steps`` iterations (100, AutoAttack's), EOT over
``--eot`` draws (20, AutoAttack's 'rand' version), one restart, on ``--batch`` test images
of the default digits network (64-128-10 RandHet dense, T = 16, sigma = 1; speed does not
depend on its accuracy). They run interleaved after a warm-up, ``--rounds`` times each, at 1
torch thread and at torch's default count, in a process that keeps the memory it frees as
the ``randhet`` command line does (``--malloc system``: glibc's defaults). Reported:
samples/second (median over rounds), the ratio (target: randhet >= 3x torchattacks), and each
attack's robust accuracy on 10 fresh draws of the same seeds (the strength at equal budget,
with its standard error over samples).
Writes ``benchmarks/results/apgd_speed.json`` (``apgd_speed_system_malloc.json`` with
``--malloc system``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import harness
import torch

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.allocator import keep_freed_memory
from randhet.attack.apgd import APGD
from randhet.config import load_config
from randhet.readout import decide
from randhet.runs import open_run
from randhet.train.trainer import train

RESULTS = harness.RESULTS / "apgd_speed.json"
RESULTS_SYSTEM = harness.RESULTS / "apgd_speed_system_malloc.json"
CONFIG = harness.ROOT / "configs" / "digits.toml"
EPS = 0.1
TARGET = 3.0  # issue 26: randhet's APGD-EOT at least 3x torchattacks' samples per second


def theirs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, eot: int,
           seed: int) -> torch.Tensor:
    import torchattacks  # benchmark and test dependency only

    atk = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=steps, n_restarts=1,
                            seed=seed, loss="ce", eot_iter=eot, rho=0.75)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        _, x_adv = atk.perturb(x, y, best_loss=True)  # every sample: its highest-loss point
    return x_adv


def ours(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, eot: int,
         seed: int) -> torch.Tensor:
    return APGD(model, eps=EPS, eot=eot, steps=steps, seed=seed)(x, y)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean accuracy over 10 fresh draws (seeds 1000..1009) and its standard error over
    samples."""
    model.eval()
    per_sample = torch.zeros(len(x))
    for r in range(10):
        model.generator.manual_seed(1000 + r)
        per_sample += (decide(model(x)) == y).float()
    per_sample /= 10
    return float(per_sample.mean()), float(per_sample.std() / len(x) ** 0.5)


def measure(run: Path, batch: int, steps: int, eot: int, rounds: int, threads: int
            ) -> dict[str, Any]:
    torch.set_num_threads(threads)
    opened = open_run(run)
    model = opened.model().eval()
    data = opened.data()
    x = torch.as_tensor(data.x_test[:batch])
    y = torch.as_tensor(data.y_test[:batch])
    variants = {"randhet": ours, "torchattacks": theirs}
    for fn in variants.values():  # warm-up, on a small problem
        fn(model, x[:8], y[:8], 2, 2, 0)
    current = {"round": 0}

    def seed(_name: str, r: int) -> None:  # every round: the same draws and seed for both
        model.generator.manual_seed(r)
        current["round"] = r

    t = harness.interleaved(
        {name: (lambda fn=fn: fn(model, x, y, steps, eot, current["round"]))
         for name, fn in variants.items()}, rounds, warmup=0, before=seed)
    out: dict[str, Any] = {"threads": threads}
    for name in variants:
        med = t.median(name)
        acc, se = accuracy(model, t.results[name], y)
        out[name] = {"seconds": t.wall[name], "median_s": med, "samples_per_s": batch / med,
                     "robust_accuracy": acc, "robust_accuracy_se": se}
    out["ratio"] = out["randhet"]["samples_per_s"] / out["torchattacks"]["samples_per_s"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="a trained run folder (default: train one)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eot", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--malloc", choices=["kept", "system"], default="kept",
                   help="kept: the process keeps freed memory, as the randhet command line "
                        "runs (both attacks); system: glibc's defaults")
    args = p.parse_args()
    kept = args.malloc == "kept" and keep_freed_memory()
    load_start = harness.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "digits"
            train(load_config(CONFIG, [f"train.epochs={args.epochs}"]), run, progress=False)
        default_threads = torch.get_num_threads()
        runs = [measure(run, args.batch, args.steps, args.eot, args.rounds, t)
                for t in sorted({1, default_threads})]
    result = {
        "benchmark": "apgd_speed", "machine": harness.machine(), "loadavg_start": load_start,
        "loadavg_end": harness.loadavg(),
        "network": "configs/digits.toml (64-128-10, T = 16, sigma 1)",
        "eps": EPS, "steps": args.steps, "eot": args.eot, "samples": args.batch,
        "rounds": args.rounds, "malloc": args.malloc, "freed_memory_kept": kept,
        "target_ratio": TARGET, "runs": runs,
        "target_met": all(r["ratio"] >= TARGET for r in runs),
    }
    harness.write_json(RESULTS if args.malloc == "kept" else RESULTS_SYSTEM, result)
    for r in runs:
        print(f"{r['threads']} thread(s): randhet {r['randhet']['samples_per_s']:.2f} "
              f"samples/s (robust acc {r['randhet']['robust_accuracy']:.3f}), torchattacks "
              f"{r['torchattacks']['samples_per_s']:.2f} samples/s (robust acc "
              f"{r['torchattacks']['robust_accuracy']:.3f}): {r['ratio']:.2f}x")
    print(f"target {TARGET}x met: {result['target_met']}")


if __name__ == "__main__":
    main()
