"""Multi-process runs: real 2-process gloo jobs (torchrun, loopback) against one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import randhet
from randhet import distributed as dist
from randhet.cli import main

TINY = ["--set", 'model.layers=["dense:24"]', "--set", "encoding.timesteps=8",
        "--set", "train.epochs=3", "--set", "train.batch_size=32", "--set", "train.lr=0.01",
        "--quiet"]
ATTACK = ["--eps", "0,0.1,0.3", "--attacks", "fgsm,pgd,square,noise", "--eot", "4", "--steps",
          "3", "--readouts", "counts", "--surrogates", "trained,width=0.3", "--square-steps",
          "10", "--square-draws", "2", "--doublings", "1", "--max-doublings", "2",
          "--selection-draws", "3", "--draws", "3", "--samples", "60", "--batch-size", "20",
          "--target", "torch,emulator", "--quiet"]


def torchrun(*args: str, procs: int = 2) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node procs -m randhet ARGS`` (gloo on loopback)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={procs}", "-m", "randhet", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


def why(done: subprocess.CompletedProcess[str]) -> str:
    """A failed run's stderr: its start (what the ranks said) and its end (the launcher's)."""
    err = done.stderr
    return err if len(err) <= 4000 else f"{err[:2500]}\n...\n{err[-1500:]}"


def log_rows(run: Path) -> list[dict[str, float]]:
    with open(run / "log.csv") as f:
        return [{k: float(v) for k, v in row.items() if k != "seconds"}
                for row in csv.DictReader(f)]


def test_world_of_one_helpers() -> None:
    w = dist.world()
    assert (w.rank, w.size, w.main, w.distributed) == (0, 1, True, False)
    assert dist.shard(10) == slice(0, 10)
    parts = [dist.shard(10, dist.World(r, 3)) for r in range(3)]
    assert [p.stop - p.start for p in parts] == [3, 4, 3]
    assert parts[0].stop == parts[1].start and parts[1].stop == parts[2].start == 7
    assert dist.my_chunks(5, dist.World(1, 2)) == [1, 3]
    assert dist.rank_seed(7, 0) == 7
    assert dist.rank_seed(7, 1) == dist.rank_seed(7, 1) != dist.rank_seed(7, 2)
    assert dist.chunk_seed(0, 1, 2) == dist.chunk_seed(0, 1, 2) != dist.chunk_seed(0, 2, 1)
    assert dist.all_sum([1.0, 2.0]).tolist() == [1.0, 2.0]
    assert dist.all_gather({"a": 1}) == [{"a": 1}]
    assert dist.gather_chunks({3: "x"}) == {3: "x"}
    t = torch.ones(2)
    assert dist.all_mean(t) is t


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sigma = 0: one process and two; sigma = 1: two processes straight through, and two
    processes interrupted after 2 epochs and resumed to 3."""
    base = tmp_path_factory.mktemp("ddp")
    runs = {k: base / k for k in ("single0", "ddp0", "ddp1", "resumed1")}
    config = ["--config", "configs/digits.toml"]
    assert main(["train", *config, *TINY, "--set", "neuron.sigma=0",
                 "--out", str(runs["single0"])]) == 0
    for name, extra in [("ddp0", ["--set", "neuron.sigma=0"]), ("ddp1", []),
                        ("resumed1", ["--set", "train.epochs=2"])]:
        done = torchrun("train", *config, *TINY, *extra, "--out", str(runs[name]))
        assert done.returncode == 0, why(done)
    done = torchrun("train", *config, *TINY, "--resume", "--out", str(runs["resumed1"]))
    assert done.returncode == 0, why(done)
    return runs


def test_two_process_training_matches_one_process(two_process_runs: dict[str, Path]) -> None:
    """With sigma = 0 nothing is random, so DDP on half batches must follow the single-process
    run: the same global batches, gradients averaged to the global mean. Summation order
    differs, so the first epoch agrees to float precision (later epochs may flip a spike)."""
    one, two = log_rows(two_process_runs["single0"]), log_rows(two_process_runs["ddp0"])
    assert len(one) == len(two) == 3
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert two[0][key] == pytest.approx(one[0][key], rel=1e-5), key
    assert abs(two[-1]["val_accuracy"] - one[-1]["val_accuracy"]) < 0.05
    metrics = json.loads((two_process_runs["ddp0"] / "metrics.json").read_text())
    assert metrics["processes"] == 2


def test_rank_draws_are_independent_and_resume_is_exact(
    two_process_runs: dict[str, Path],
) -> None:
    run = two_process_runs["ddp1"]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ranks = ckpt["rng"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["model"], ranks[1]["model"])
    assert torch.equal(ranks[0]["model"], ckpt["rng"]["model"])  # rank 0 = the saved state
    # only rank 0 wrote: one set of files, no per-rank leftovers
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checkpoint.pt", "config.toml", "last.pt", "log.csv", "log.jsonl", "metrics.json",
         "network.pt", "spec.json", "training.png"])
    # interrupted after epoch 2 and resumed: the same numbers as straight through
    assert log_rows(two_process_runs["resumed1"]) == log_rows(run)
    resumed = torch.load(two_process_runs["resumed1"] / "network.pt", weights_only=True)
    straight = torch.load(run / "network.pt", weights_only=True)
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def _without(report: dict, *keys: str) -> dict:
    return {k: v for k, v in report.items() if k not in keys}


def test_sharded_attack_deploy_and_profile_equal_one_process(tiny_run: Path, tmp_path: Path
                                                             ) -> None:
    """The robustness protocol, the emulator deployment and the profile on 2 processes write
    the same JSON as one process with the same seeds (timing and the process count aside)."""
    assert main(["attack", str(tiny_run), *ATTACK, "--out", str(tmp_path / "a1")]) == 0
    assert main(["deploy", str(tiny_run / "network.net"), "--backend", "emulator", "--quiet",
                 "--out", str(tmp_path / "d1")]) == 0
    done = torchrun("attack", str(tiny_run), *ATTACK, "--out", str(tmp_path / "a2"))
    assert done.returncode == 0, why(done)
    done = torchrun("deploy", str(tiny_run / "network.net"), "--backend", "emulator",
                    "--quiet", "--out", str(tmp_path / "d2"))
    assert done.returncode == 0, why(done)
    assert done.stdout.count("deployed on emulator") == 1  # rank 0 prints, rank 1 is silent
    a1, a2 = (json.loads((tmp_path / a / "robustness.json").read_text()) for a in ("a1", "a2"))
    assert a2["processes"] == 2 and a1["processes"] == 1
    timing = ("seconds", "processes", "speed", "summary")  # how long, not what
    assert _without(a1, *timing) == _without(a2, *timing)
    d1, d2 = (json.loads((tmp_path / d / "deploy.json").read_text()) for d in ("d1", "d2"))
    assert _without(d1, "wall_seconds", "processes") == _without(d2, "wall_seconds", "processes")
    assert main(["profile", str(tiny_run / "network.net"), "--samples", "0", "--quiet",
                 "--out", str(tmp_path / "p1")]) == 0
    done = torchrun("profile", str(tiny_run / "network.net"), "--samples", "0", "--quiet",
                    "--out", str(tmp_path / "p2"))
    assert done.returncode == 0, why(done)
    p1, p2 = (json.loads((tmp_path / p / "profile.json").read_text()) for p in ("p1", "p2"))
    assert p2["processes"] == 2
    assert _without(p1, "wall_seconds", "processes") == _without(p2, "wall_seconds", "processes")


def test_commands_that_do_not_shard_refuse_two_processes(tiny_run: Path) -> None:
    done = torchrun("deploy", str(tiny_run / "network.net"), "--backend", "lava")
    assert done.returncode != 0
    assert done.stderr.count("does not run distributed") == 2  # one line from each rank
    # no traceback through randhet's own files (torchrun prints its own ChildFailedError summary
    # when a worker exits non-zero); the checkout's folder may itself be called randhet
    package = Path(randhet.__file__).resolve().parent
    assert f'File "{package}' not in done.stderr


def test_two_process_run_trains_exports_deploys_and_attacks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--config", "configs/digits.toml", *TINY, "--set", "train.epochs=1",
            "--set", "attack.samples=40", "--set", "attack.batch_size=20", "--set",
            "attack.eot=2", "--set", "attack.steps=2", "--set", "attack.draws=2", "--set",
            "attack.eps=[0.0,0.2]", "--set", 'attack.targets=["torch","emulator"]',
            "--set", "attack.square_steps=10", "--set", "attack.doublings=1", "--set",
            "attack.max_doublings=1", "--set", 'attack.surrogates=["trained"]', "--set",
            'attack.readouts=["counts"]', "--out", str(out)]
    refused = torchrun(*args)  # digits.toml deploys on Lava: one process only
    assert refused.returncode != 0 and "deploy.backend=emulator" in refused.stderr
    done = torchrun(*args, "--set", "deploy.backend=emulator")
    assert done.returncode == 0, why(done)
    assert done.stdout.count("test accuracy (emulator") == 1
    for name in ("network.net", "deploy.json", "robustness.json", "metrics.json"):
        assert (out / name).is_file(), name
    deploy = json.loads((out / "deploy.json").read_text())
    assert deploy["processes"] == 2 and deploy["bit_exact_fraction"] == 1.0
    assert not (out / "robustness.partial").exists()
