"""Throughput of training, the robustness protocol and emulator deployment on 1 and 2 processes.

Run by hand (not a test)::

    .venv/bin/python benchmarks/scaling.py                 # 1 vs 2 processes
    .venv/bin/python benchmarks/scaling.py --procs 1,2,4   # on a machine with more cores

Every stage runs as a real ``torchrun --standalone --nproc-per-node N -m randhet ...`` job
(gloo on loopback) on the default digits network (64-128-10 RandHet dense, T = 16, sigma = 1):

- ``train``: ``--epochs`` epochs on the digits training split (global batch 32); samples/s =
  training samples x epochs / the sum of the epochs' ``seconds`` in ``log.csv`` (training +
  validation, startup excluded);
- ``attack``: the robustness protocol (FGSM + PGD-10, EOT 8, 3 eps, 4 scoring draws) on
  ``--attack-samples`` test samples, chunks of 25; samples/s from ``robustness.json``'s
  ``seconds``;
- ``deploy``: the emulator on the whole test split; samples/s from ``deploy.json``'s
  ``wall_seconds``.

One process runs twice: with one torch thread (what each of N processes gets: torchrun sets
``OMP_NUM_THREADS=1``) and with as many threads as processes in the largest job, so the table
shows both the per-process scaling and the comparison with intra-op threading on the same
cores. The sharded attack and deploy outputs are checked to equal the one-process ones. Prints
the ratios; writes ``benchmarks/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
CONFIG = ROOT / "configs" / "digits.toml"


def torchrun(procs: int, threads: int, *args: str) -> float:
    """Run one randhet command under torchrun; wall seconds of the whole job."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={procs}", "-m", "randhet", *args],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    if done.returncode != 0:
        sys.exit(f"scaling: {' '.join(args[:2])} on {procs} process(es) failed:\n"
                 f"{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def stage_rates(procs: int, threads: int, work: Path, args: argparse.Namespace,
                ) -> dict[str, Any]:
    """Samples/s of train, attack and deploy for one (processes, threads) setting."""
    tag = f"p{procs}t{threads}"
    run = work / f"train-{tag}"
    out: dict[str, Any] = {"processes": procs, "threads_per_process": threads}
    wall = torchrun(procs, threads, "train", "--config", str(CONFIG), "--out", str(run),
                    "--set", f"train.epochs={args.epochs}", "--quiet")
    with open(run / "log.csv") as f:
        seconds = sum(float(r["seconds"]) for r in csv.DictReader(f))
    samples = json.loads((run / "metrics.json").read_text())["train_samples"]
    out["train"] = {"samples_per_s": samples * args.epochs / seconds, "seconds": seconds,
                    "job_wall_s": wall}
    # attack and deploy use ONE network (the 1-process run's), so their outputs compare
    net_run = work / "train-p1t1"
    attack_out = work / f"attack-{tag}"
    wall = torchrun(procs, threads, "attack", str(net_run), "--out", str(attack_out),
                    "--eps", "0,0.1,0.2", "--attacks", "fgsm,pgd", "--eot", "8", "--steps",
                    "10", "--draws", "4", "--samples", str(args.attack_samples),
                    "--batch-size", "25", "--target", "torch,emulator", "--quiet")
    report = json.loads((attack_out / "robustness.json").read_text())
    out["attack"] = {"samples_per_s": report["samples"] / report["seconds"],
                     "seconds": report["seconds"], "job_wall_s": wall}
    deploy_out = work / f"deploy-{tag}"
    wall = torchrun(procs, threads, "deploy", str(net_run / "network.net"), "--backend",
                    "emulator", "--out", str(deploy_out), "--quiet")
    report = json.loads((deploy_out / "deploy.json").read_text())
    out["deploy"] = {"samples_per_s": report["samples"] / report["wall_seconds"],
                     "seconds": report["wall_seconds"], "job_wall_s": wall}
    return out


def _same(work: Path, kind: str, name: str, tag: str, skip: tuple[str, ...]) -> bool:
    a = json.loads((work / f"{kind}-p1t1" / name).read_text())
    b = json.loads((work / f"{kind}-{tag}" / name).read_text())
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", default="1,2", help="process counts (comma-separated)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--attack-samples", type=int, default=100)
    args = parser.parse_args()
    procs = sorted({int(p) for p in args.procs.split(",")} | {1})
    settings = [(1, 1)] + [(p, 1) for p in procs if p > 1] + [(1, max(procs))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for p, t in settings:  # 1 x 1 first: its network (exported by its attack stage)
            print(f"running {p} process(es) x {t} thread(s) ...", flush=True)
            rates = stage_rates(p, t, work, args)
            tag = f"p{p}t{t}"
            rates["identical_to_one_process"] = {
                "attack": _same(work, "attack", "robustness.json", tag,
                                ("seconds", "processes")),
                "deploy": _same(work, "deploy", "deploy.json", tag,
                                ("wall_seconds", "processes")),
            }
            rows.append(rates)
    base = rows[0]
    print(f"\n{'setting':<22}{'train/s':>10}{'attack/s':>10}{'deploy/s':>10}   ratios vs 1x1")
    for r in rows:
        ratios = {s: r[s]["samples_per_s"] / base[s]["samples_per_s"]
                  for s in ("train", "attack", "deploy")}
        r["ratio_vs_1_process_1_thread"] = ratios
        label = f"{r['processes']} proc x {r['threads_per_process']} thr"
        print(f"{label:<22}{r['train']['samples_per_s']:>10.0f}"
              f"{r['attack']['samples_per_s']:>10.1f}{r['deploy']['samples_per_s']:>10.0f}   "
              + "  ".join(f"{s} {v:.2f}x" for s, v in ratios.items())
              + ("" if all(r["identical_to_one_process"].values()) else "  OUTPUTS DIFFER"))
    result = {
        "benchmark": "scaling",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "network": "configs/digits.toml (64-128-10 RandHet dense, T = 16, sigma = 1)",
        "epochs": args.epochs, "attack_samples": args.attack_samples,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
