"""Throughput of training, the robustness protocol and emulator deployment on 1 and 2 processes.

Run by hand (not a test)::

    .venv/bin/python benchmarks/scaling.py                 # 1 vs 2 processes
    .venv/bin/python benchmarks/scaling.py --procs 1,2,4   # on a machine with more cores

Every stage runs as a real ``torchrun --standalone --nproc-per-node N -m randhet ...`` job
(gloo on loopback) on digits:

- ``train_conv``: the conv network of ``configs/digits-conv.toml`` (conv 12 s2, conv 24 s2,
  dense 64, 10; T = 8, sigma = 1) with global batch 256, ``--epochs`` epochs; samples/s =
  training samples / the median epoch's ``seconds`` in ``log.csv`` (training + validation;
  startup excluded, epochs are short, so the median damps other load);
- ``train_dense``: the default dense network (64-128-10, T = 16) with its global batch of 32:
  small per-process batches, where per-step overhead and the gradient all-reduce dominate;
- ``attack``: the robustness protocol (FGSM + PGD-5, EOT 8, eps 0 and 0.1, 4 scoring draws,
  torch and emulator targets) on ``--attack-samples`` test samples of the conv network, chunks
  of 25; samples/s from ``robustness.json``'s ``seconds``;
- ``deploy``: the sharded emulator (:func:`randhet.deploy.pipeline.emulate_sharded`: rasters,
  torch reference, gather) on the conv network's test split repeated ``--deploy-repeat`` times
  (359 x 10 samples: the split alone is ~0.2 s of work, too little to time), best of 3 calls;
  ``randhet deploy --backend emulator`` itself runs too, for the identical-output check.

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
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness

ROOT = harness.ROOT
RESULTS = harness.RESULTS / "scaling.json"
TRAININGS = {  # stage: (config, global batch)
    "train_conv": (ROOT / "configs" / "digits-conv.toml", 256),
    "train_dense": (ROOT / "configs" / "digits.toml", 32),
}
STAGES = ("train_conv", "train_dense", "attack", "deploy")


def torchrun(procs: int, threads: int, *args: str, script: str | None = None) -> float:
    """Run one randhet command (or ``script ARGS``) under torchrun; wall seconds of the job."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    target = [script] if script else ["-m", "randhet"]
    seconds, done = harness.timed(lambda: subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={procs}", *target, *args],
        capture_output=True, text=True, env=env, cwd=ROOT,
    ))
    if done.returncode != 0:
        sys.exit(f"scaling: {' '.join(args[:2])} on {procs} process(es) failed:\n"
                 f"{done.stderr[-3000:]}")
    return seconds


def deploy_worker(network: str, repeat: int, out: str) -> None:
    """Under torchrun: time the sharded emulator on the test split repeated ``repeat`` times;
    rank 0 writes {samples, seconds (best of 3)} to ``out``."""
    import dataclasses  # reason: the worker's imports, not the driver's

    import numpy as np

    import randhet  # noqa: F401
    from randhet import distributed as dist
    from randhet.decays import DecayDraw
    from randhet.deploy.pipeline import emulate_sharded, prepare

    with dist.session() as world:
        prep = prepare(network, samples=0, profile="loihi2", seed=1)
        big = dataclasses.replace(
            prep, inputs=np.concatenate([prep.inputs] * repeat),
            draws=[DecayDraw(d.current.repeat(repeat, *[1] * (d.current.dim() - 1)),
                             d.voltage.repeat(repeat, *[1] * (d.voltage.dim() - 1)))
                   for d in prep.draws])
        times, _ = harness.time_calls(lambda: emulate_sharded(big), 3, warmup=0,
                                      before=lambda *_: dist.barrier())
        if world.main:
            harness.write_json(out, {"samples": big.samples, "seconds": min(times)})


def stage_rates(procs: int, threads: int, work: Path, args: argparse.Namespace,
                ) -> dict[str, Any]:
    """Samples/s of train, attack and deploy for one (processes, threads) setting."""
    tag = f"p{procs}t{threads}"
    out: dict[str, Any] = {"processes": procs, "threads_per_process": threads}
    for stage, (config, batch) in TRAININGS.items():
        run = work / f"{stage}-{tag}"
        wall = torchrun(procs, threads, "train", "--config", str(config), "--out", str(run),
                        "--set", f"train.epochs={args.epochs}", "--set",
                        f"train.batch_size={batch}", "--quiet")
        with open(run / "log.csv") as f:
            seconds = harness.median([float(r["seconds"]) for r in csv.DictReader(f)])
        samples = json.loads((run / "metrics.json").read_text())["train_samples"]
        out[stage] = {"samples_per_s": samples / seconds, "median_epoch_s": seconds,
                      "global_batch": batch, "job_wall_s": wall}
    # attack and deploy use ONE network (the 1-process conv run's), so their outputs compare
    net_run = work / "train_conv-p1t1"
    attack_out = work / f"attack-{tag}"
    wall = torchrun(procs, threads, "attack", str(net_run), "--out", str(attack_out),
                    "--eps", "0,0.1", "--attacks", "fgsm,pgd", "--eot", "8", "--steps",
                    "5", "--draws", "4", "--samples", str(args.attack_samples),
                    "--batch-size", "25", "--target", "torch,emulator", "--quiet")
    report = json.loads((attack_out / "robustness.json").read_text())
    out["attack"] = {"samples_per_s": report["samples"] / report["seconds"],
                     "seconds": report["seconds"], "job_wall_s": wall}
    deploy_out = work / f"deploy-{tag}"
    wall = torchrun(procs, threads, "deploy", str(net_run / "network.net"), "--backend",
                    "emulator", "--out", str(deploy_out), "--quiet")
    timing = work / f"deploy-{tag}.json"
    torchrun(procs, threads, "--deploy-worker", str(net_run / "network.net"),
             "--deploy-repeat", str(args.deploy_repeat), "--deploy-out", str(timing),
             script=__file__)
    report = json.loads(timing.read_text())
    out["deploy"] = {"samples_per_s": report["samples"] / report["seconds"],
                     "seconds": report["seconds"], "samples": report["samples"],
                     "randhet_deploy_job_wall_s": wall}
    return out


def _same(work: Path, kind: str, name: str, tag: str, skip: tuple[str, ...]) -> bool:
    a = json.loads((work / f"{kind}-p1t1" / name).read_text())
    b = json.loads((work / f"{kind}-{tag}" / name).read_text())
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", default="1,2", help="process counts (comma-separated)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--attack-samples", type=int, default=100)
    parser.add_argument("--deploy-repeat", type=int, default=10)
    parser.add_argument("--deploy-worker", help=argparse.SUPPRESS)
    parser.add_argument("--deploy-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.deploy_worker:
        deploy_worker(args.deploy_worker, args.deploy_repeat, args.deploy_out)
        return
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
    print("\nsamples/s (ratio to 1 process x 1 thread)")
    print(f"{'setting':<16}" + "".join(f"{s:>22}" for s in STAGES))
    for r in rows:
        ratios = {s: r[s]["samples_per_s"] / base[s]["samples_per_s"] for s in STAGES}
        r["ratio_vs_1_process_1_thread"] = ratios
        label = f"{r['processes']} proc x {r['threads_per_process']} thr"
        print(f"{label:<16}" + "".join(
            f"{r[s]['samples_per_s']:>14.1f} ({ratios[s]:.2f}x)" for s in STAGES)
              + ("" if all(r["identical_to_one_process"].values()) else "  OUTPUTS DIFFER"))
    result = {
        "benchmark": "scaling",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {**harness.machine(), "load_average_at_end": harness.loadavg()},
        "networks": {"train_conv": "configs/digits-conv.toml, global batch 256",
                     "train_dense": "configs/digits.toml, global batch 32",
                     "attack": "the conv network", "deploy": "the conv network"},
        "epochs": args.epochs, "attack_samples": args.attack_samples,
        "rows": rows,
    }
    harness.write_json(RESULTS, result)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
