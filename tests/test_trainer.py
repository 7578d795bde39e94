"""The trainer: optimizers and schedules, FGSM training, learned decays, checkpoints, resume
(bit-identical to an uninterrupted run on the CPU) and SIGTERM handling. Real training of tiny
networks on the embedded digits data."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from randhet.cli import main
from randhet.config import dump_toml, network_spec
from randhet.data import load_dataset
from randhet.models.spiking import SpikingNetwork
from randhet.train.checkpoint import interrupt_at_safe_points
from randhet.train.trainer import (
    TrainState,
    build_optimizer,
    build_scheduler,
    fgsm_examples,
    train,
    train_step,
)

FAST = ["train.batch_size=64", "train.device=cpu", "data.limit=512"]


def _write_config(path: Path, cfg: dict) -> str:
    path.write_text(dump_toml(cfg))
    return str(path)


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _log_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    for r in rows:
        assert r.pop("seconds") > 0
    return rows


def _assert_same_tree(a: object, b: object, where: str = "") -> None:
    """Nested dicts/lists of tensors and plain values, compared exactly."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tree(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def _assert_same_run(a: Path, b: Path) -> None:
    """Same weights, logs (but wall-clock seconds) and whole training state, bit for bit."""
    for name in ("network.pt", "last.pt"):
        _assert_same_state(_load(a / name), _load(b / name))
    assert _log_rows(a) == _log_rows(b)
    ca, cb = _load(a / "checkpoint.pt"), _load(b / "checkpoint.pt")
    for ckpt in (ca, cb):
        for row in ckpt.pop("log"):
            row.pop("seconds")
    _assert_same_tree(ca, cb)


@pytest.fixture(scope="module")
def runs(make_tiny_config, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four epochs in one go, and two epochs then --resume to four (rate coding, sigma 1)."""
    tmp = tmp_path_factory.mktemp("resume")
    cfg = make_tiny_config(*FAST, "encoding.kind=rate", "train.epochs=4")
    conf = _write_config(tmp / "tiny.toml", cfg)
    full, part = tmp / "full", tmp / "part"
    assert main(["train", "--config", conf, "--out", str(full), "--quiet"]) == 0
    base = ["train", "--config", conf, "--out", str(part), "--quiet"]
    assert main([*base, "--set", "train.epochs=2"]) == 0
    assert _load(part / "checkpoint.pt")["epoch"] == 2
    assert main([*base, "--resume"]) == 0
    return {"config": Path(conf), "full": full, "part": part}


def test_resume_equals_uninterrupted_run(runs: dict[str, Path], capsys) -> None:
    _assert_same_run(runs["full"], runs["part"])
    assert len(_log_rows(runs["full"])) == 4
    metrics = [json.loads((runs[k] / "metrics.json").read_text()) for k in ("full", "part")]
    assert metrics[0] == metrics[1]
    capsys.readouterr()
    before = _load(runs["part"] / "last.pt")
    assert main(["train", "--config", str(runs["config"]), "--out", str(runs["part"]),
                 "--quiet", "--resume"]) == 0  # already finished: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    _assert_same_state(before, _load(runs["part"] / "last.pt"))
    assert len(_log_rows(runs["part"])) == 4


def test_checkpoint_loads_with_weights_only(runs: dict[str, Path]) -> None:
    ckpt = _load(runs["full"] / "checkpoint.pt")
    assert ckpt["epoch"] == 4 and len(ckpt["log"]) == 4
    assert ckpt["best"]["epoch"] in range(1, 5)
    assert set(ckpt["rng"]) == {"model", "order", "torch", "cuda", "ranks"}
    assert ckpt["rng"]["ranks"] == []  # one process: its states are the ones above
    _assert_same_state(ckpt["best_model"], _load(runs["full"] / "network.pt"))
    header = (runs["full"] / "log.csv").read_text().splitlines()[0].split(",")
    for column in ("epoch", "train_loss", "val_accuracy", "lr", "seconds", "spike_rate_0",
                   "current_decay_0", "voltage_decay_0"):
        assert column in header
    assert (runs["full"] / "training.png").stat().st_size > 0


def test_resume_refuses_a_changed_config(runs: dict[str, Path], tmp_path: Path,
                                         capsys) -> None:
    base = ["train", "--config", str(runs["config"]), "--out", str(runs["full"]), "--quiet",
            "--resume"]
    capsys.readouterr()
    for change, key in (("neuron.sigma=0.5", "'neuron.sigma'"),
                        ("train.epochs=3", "'train.epochs'"),
                        ("train.optimizer=sgd", "'train.optimizer'")):
        assert main([*base, "--set", change]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("randhet: error: cannot resume"), err
        assert key in err[0]
    assert main(["train", "--config", str(runs["config"]), "--out", str(tmp_path / "none"),
                 "--resume"]) == 2
    assert "config.toml" in capsys.readouterr().err
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "config.toml").write_text(runs["config"].read_text())
    assert main(["train", "--config", str(runs["config"]), "--out", str(tmp_path / "none"),
                 "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits(make_tiny_config):
    cfg = make_tiny_config(*FAST)
    return cfg, load_dataset(cfg["data"])


def _state(cfg: dict, data) -> TrainState:
    torch.manual_seed(cfg["seed"])
    spec = network_spec(cfg, data.input_shape, data.num_classes)
    model = SpikingNetwork(spec, seed=cfg["seed"])
    opt = build_optimizer(model, cfg["train"])
    return TrainState(model, opt, build_scheduler(opt, cfg["train"]), np.random.default_rng(0))


def _batch(data, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(data.x_train[:n]), torch.as_tensor(data.y_train[:n])


@pytest.mark.parametrize("clip", [0.0, 0.5])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_takes_a_finite_step(digits, optimizer: str, schedule: str,
                                             clip: float) -> None:
    cfg, data = digits
    cfg = {**cfg, "train": {**cfg["train"], "optimizer": optimizer, "schedule": schedule,
                            "grad_clip": clip, "weight_decay": 0.01}}
    state = _state(cfg, data)
    before = [p.detach().clone() for p in state.model.weight_parameters()]
    out = train_step(state, *_batch(data), cfg["train"])
    assert math.isfinite(out["loss"]) and out["loss"] > 0
    moved = [not torch.equal(a, b) for a, b in zip(before, state.model.weight_parameters(),
                                                    strict=True)]
    assert all(moved)
    assert state.optimizer.param_groups[0]["weight_decay"] == 0.01


def test_grad_clip_bounds_the_global_norm_of_an_sgd_step(digits) -> None:
    cfg, data = digits
    cfg = {**cfg, "train": {**cfg["train"], "optimizer": "sgd", "lr": 1.0, "grad_clip": 0.01}}
    state = _state(cfg, data)
    before = [p.detach().clone() for p in state.model.weight_parameters()]
    train_step(state, *_batch(data), cfg["train"])
    delta = torch.cat([(p.detach() - b).flatten()
                       for p, b in zip(state.model.weight_parameters(), before, strict=True)])
    assert delta.norm().item() == pytest.approx(0.01, rel=1e-3)  # lr * max norm


def test_cosine_schedule_anneals_to_zero(digits) -> None:
    cfg, data = digits
    cfg = {**cfg, "train": {**cfg["train"], "schedule": "cosine", "epochs": 5, "lr": 0.02}}
    state = _state(cfg, data)
    lrs = []
    for _ in range(5):
        lrs.append(state.optimizer.param_groups[0]["lr"])
        state.optimizer.step()  # no gradients: changes nothing
        state.scheduler.step()
    expected = [0.01 * (1 + math.cos(math.pi * e / 5)) for e in range(5)]
    assert lrs == pytest.approx(expected)
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_fgsm_examples_raise_the_loss(make_tiny_config, digits) -> None:
    _, data = digits
    cfg = make_tiny_config(*FAST, "neuron.sigma=0")  # deterministic network: same loss twice
    model = _state(cfg, data).model
    x, y = _batch(data, 128)
    eps = 0.1
    x_adv, clean = fgsm_examples(model, x, y, eps)
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1
    assert not torch.equal(x_adv, x)
    with torch.no_grad():
        clean_loss = torch.nn.functional.cross_entropy(model(x), y).item()
        adv_loss = torch.nn.functional.cross_entropy(model(x_adv), y).item()
    assert torch.equal(clean, model(x).detach())
    assert adv_loss > clean_loss + 0.1
    assert all(p.grad is None for p in model.parameters())  # crafting leaves no gradients


def test_adversarial_training_logs_adversarial_and_clean_loss(make_tiny_config,
                                                              tmp_path: Path) -> None:
    cfg = make_tiny_config(*FAST, "train.epochs=1", "train.adv_eps=0.1")
    handler = signal.getsignal(signal.SIGTERM)
    train(cfg, tmp_path, progress=False)
    assert signal.getsignal(signal.SIGTERM) is handler  # restored after training
    (row,) = _log_rows(tmp_path)
    assert row["train_loss"] > row["clean_loss"]  # same weights per batch, attacked inputs
    assert row["train_accuracy"] < row["clean_accuracy"]
    assert json.loads((tmp_path / "metrics.json").read_text())["adv_eps"] == 0.1


def test_learned_decays_move_with_their_own_learning_rate(make_tiny_config,
                                                          tmp_path: Path) -> None:
    cfg = make_tiny_config(*FAST, "train.epochs=2", "neuron.learn_decay=true",
                           "train.decay_lr=0.05", "train.weight_decay=0.001")
    train(cfg, tmp_path, progress=False)
    rows = _log_rows(tmp_path)
    groups = {g["name"]: g for g in _load(tmp_path / "checkpoint.pt")["optimizer"]["param_groups"]}
    assert groups["decays"]["lr"] == 0.05 and groups["decays"]["weight_decay"] == 0.0
    assert groups["weights"]["lr"] == 0.01 and groups["weights"]["weight_decay"] == 0.001
    assert all(r["decay_lr"] == 0.05 for r in rows)
    first, last = rows[0], rows[-1]
    moved = [abs(last[k] - first[k]) for k in first if k.endswith("_decay_0")]
    assert len(moved) == 2 and max(moved) > 1e-3
    assert first["current_decay_0"] != cfg["neuron"]["current_decay"]


def test_interrupts_wait_for_a_safe_point_unless_repeated() -> None:
    """The first Ctrl-C or SIGTERM is raised by check() only (never inside library code, where
    it broke a half-built progress bar); a second one raises at once; handlers come back."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    for first in (signal.SIGTERM, signal.SIGINT):
        with interrupt_at_safe_points() as check:
            check()  # nothing pending yet
            try:
                os.kill(os.getpid(), first)
                time.sleep(0.01)  # handlers run between bytecodes, so here
            except KeyboardInterrupt:
                pytest.fail("the first interrupt was raised inside the guarded code")
            with pytest.raises(KeyboardInterrupt):
                check()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sigterm_stops_after_a_checkpoint_and_resume_completes(make_tiny_config,
                                                               tmp_path: Path) -> None:
    epochs = 10
    cfg = make_tiny_config(*FAST, f"train.epochs={epochs}", "train.optimizer=sgd",
                           "train.schedule=cosine", "train.grad_clip=1.0")
    conf = _write_config(tmp_path / "tiny.toml", cfg)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "randhet", "train", "--config", conf, "--out", str(out),
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # a guard against a hang, not a timing: a loaded 2-core machine has taken over 120 s
    deadline = time.monotonic() + 600
    while not (out / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 600 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    saved = _load(out / "checkpoint.pt")["epoch"]
    assert 1 <= saved < epochs
    assert main(["train", "--config", conf, "--out", str(out), "--quiet", "--resume"]) == 0
    whole = tmp_path / "whole"
    train(cfg, whole, progress=False)
    _assert_same_run(out, whole)
    rows = _log_rows(whole)
    assert rows[0]["lr"] == cfg["train"]["lr"]
    assert all(a["lr"] > b["lr"] for a, b in zip(rows, rows[1:], strict=False))
    final_lr = _load(whole / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"]
    assert final_lr == pytest.approx(0.0, abs=1e-12)
