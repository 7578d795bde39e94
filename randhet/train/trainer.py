"""Training loop: spike-count cross-entropy, model selection on the validation split.

Writes into the run folder: ``config.toml`` (resolved), ``spec.json`` (network description),
``network.pt`` (best-on-validation state dict), ``last.pt`` (latest state dict),
``checkpoint.pt`` (the whole training state after every epoch, see
:func:`randhet.train.checkpoint.checkpoint_state`),
``log.csv`` and ``log.jsonl`` (one row per epoch), ``training.png``, ``metrics.json`` and,
when tensorboard is installed, TensorBoard scalars under ``tb/``. Test data is never looked
at here. Every file is written atomically, so an interrupted run (Ctrl-C, SIGTERM) keeps the
last completed epoch's checkpoint, and ``train(..., resume=True)`` continues from it to exactly
the weights and logs of an uninterrupted run (on the CPU).

Under ``torchrun`` (:mod:`randhet.distributed`) the model is wrapped in DistributedDataParallel:
``train.batch_size`` stays the *global* batch, each rank trains on its contiguous share of every
batch with its own decay draws (:func:`~randhet.distributed.rank_seed`), the loss is scaled so
the averaged gradient equals the gradient of the global batch's mean loss, and validation is
sharded and summed. Only rank 0 writes files; ``checkpoint.pt`` holds every rank's generators.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from randhet import distributed as dist
from randhet import kernel
from randhet.config import dump_toml, network_spec
from randhet.data import Splits, load_dataset
from randhet.errors import UserError
from randhet.io import save_torch, write_json, write_text
from randhet.models import EVAL_BATCH, Network, build_network
from randhet.plots import plot_training
from randhet.readout import SILENT, TIE, correct_count, decide
from randhet.train.checkpoint import (
    CHECKPOINT,
    check_resume_config,
    checkpoint_state,
    interrupt_at_safe_points,
    load_checkpoint,
    report_interrupt,
    restore,
)
from randhet.train.logs import log_row, tensorboard, write_logs
from randhet.train.state import EvalResult, TrainMetrics, TrainState, cpu_state

__all__ = ["EvalResult", "TrainState", "build_optimizer", "build_scheduler", "evaluate",
           "fgsm_examples", "train", "train_epoch", "train_step"]


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; under torchrun a CUDA device is this
    process's ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and dist.world().distributed:
        device = torch.device("cuda", dist.world().local_rank)
    return device

@torch.no_grad()
def evaluate(
    model: Network, x: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device
) -> EvalResult:
    """Accuracy, loss and spike rates with fresh decay draws (the model is stochastic).

    Under torchrun each rank evaluates its share of ``x`` and the sums are added up, so every
    rank returns the same result."""
    model.eval()
    part = dist.shard(len(x))
    x, y, total = x[part], y[part], len(x)
    correct, ties, silent, loss_sum = 0, 0, 0, 0.0
    spikes: np.ndarray | None = None
    sizes: np.ndarray | None = None
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], device=device)
        yb = torch.as_tensor(y[i:i + batch_size], device=device)
        layers = model.run_encoded(model.encoder(xb))
        logits = layers[-1].sum(-1)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        decided = decide(logits)
        correct += int((decided == yb).sum().item())
        ties += int((decided == TIE).sum().item())
        silent += int((decided == SILENT).sum().item())
        batch_spikes = np.array([s.double().sum().item() for s in layers])
        batch_sizes = np.array([s.numel() for s in layers], dtype=np.float64)
        spikes = batch_spikes if spikes is None else spikes + batch_spikes
        sizes = batch_sizes if sizes is None else sizes + batch_sizes
    sums = dist.all_sum([correct, loss_sum, ties, silent, *spikes,  # type: ignore[misc]
                         *sizes])
    layers = (len(sums) - 4) // 2
    rate = sums[4:4 + layers] / sums[4 + layers:]
    return EvalResult(float(sums[0]) / total, float(sums[1]) / total, rate.tolist(),
                      float(sums[2]) / total, float(sums[3]) / total)

def build_optimizer(model: Network, tc: dict[str, Any]) -> torch.optim.Optimizer:
    """``train.optimizer`` over two groups: ``weights`` (lr, weight_decay) and, when the mean
    decays are learned, ``decays`` (lr ``decay_lr``, or lr if 0; no weight decay)."""
    groups: list[dict[str, Any]] = [{
        "name": "weights", "params": model.weight_parameters(),
        "lr": tc["lr"], "weight_decay": tc["weight_decay"],
    }]
    decays = model.decay_parameters()
    if decays:
        groups.append({
            "name": "decays", "params": decays,
            "lr": tc["decay_lr"] or tc["lr"], "weight_decay": 0.0,
        })
    if tc["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=tc["lr"], momentum=tc["momentum"])
    if tc["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=tc["lr"])
    return torch.optim.Adam(groups, lr=tc["lr"])

def build_scheduler(
    optimizer: torch.optim.Optimizer, tc: dict[str, Any]
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor per epoch, stepped once per epoch: 1 (``constant``) or
    ``(1 + cos(pi * epoch / epochs)) / 2`` (``cosine``: 1 in the first epoch, 0 after the last)."""
    epochs, cosine = tc["epochs"], tc["schedule"] == "cosine"

    def factor(epoch: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs)) if cosine else 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

def fgsm_examples(
    model: Network, x: torch.Tensor, y: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step FGSM: ``clamp(x + eps * sign(grad_x CE(model(x), y)), 0, 1)`` on [0, 1] pixels.

    The gradient is taken through the network exactly as it trains (train mode, a fresh decay
    and encoding draw, nothing frozen), so the attack sees one sample of the stochastic network
    and the training step on the returned examples sees another: the RandHet reference recipe
    (FGSM adversarial training at eps = 4/255). Returns the examples and the clean logits
    (detached; their loss and accuracy are logged as ``clean_*``). Parameter gradients are
    left untouched.
    """
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), x)
    return (x + eps * grad.sign()).clamp(0, 1).detach(), logits.detach()

def train_step(
    state: TrainState, x: torch.Tensor, y: torch.Tensor, tc: dict[str, Any], share: float = 1.0
) -> dict[str, float]:
    """One optimizer step (on FGSM examples when ``adv_eps > 0``); sums of loss and hits.

    ``share``: this rank's fraction of the global batch times the number of ranks (1 in a
    single process); DDP averages gradients over ranks, so scaling the local mean loss by it
    gives the gradient of the global batch's mean loss."""
    out: dict[str, float] = {}
    if tc["adv_eps"] > 0:
        x, clean = fgsm_examples(state.model, x, y, tc["adv_eps"])
        out["clean_loss"] = F.cross_entropy(clean, y, reduction="sum").item()
        out["clean_correct"] = correct_count(clean, y)
    logits = state.forward(x)
    loss = F.cross_entropy(logits, y)
    state.optimizer.zero_grad(set_to_none=True)
    (loss * share).backward()
    if tc["grad_clip"] > 0:
        params = [p for g in state.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, tc["grad_clip"])
    state.optimizer.step()
    for module in state.model.modules():  # Flex plasticity (FlexSpec.plastic), after the step
        if hasattr(module, "plasticity_step"):
            if getattr(module, "path_rates", None) is not None:  # the global batch's rates
                module.path_rates = tuple(dist.all_mean(r) for r in module.path_rates)
            module.plasticity_step()
    out["loss"] = loss.item() * len(y)
    out["correct"] = correct_count(logits, y)
    return out

def train_epoch(
    state: TrainState, data: Splits, tc: dict[str, Any], device: torch.device, bar_desc: str,
    progress: bool,
) -> dict[str, float]:
    """One pass over the shuffled training split; mean loss and accuracy (and clean ones).

    Every rank shuffles identically and takes its share of each global batch; a final batch
    smaller than the number of ranks is skipped (distributed runs only)."""
    state.model.train()
    world = dist.world()
    perm = state.order_rng.permutation(len(data.x_train))
    sums: dict[str, float] = {}
    seen = 0
    bar = tqdm(
        range(0, len(perm), tc["batch_size"]), desc=bar_desc, leave=False,
        disable=None if progress else True,  # None: shown on a terminal only
    )
    with bar:
        for i in bar:
            state.check_interrupt()
            batch = perm[i:i + tc["batch_size"]]
            if len(batch) < world.size:
                continue
            idx = batch[dist.shard(len(batch), world)]
            xb = torch.as_tensor(data.x_train[idx], device=device)
            yb = torch.as_tensor(data.y_train[idx], device=device)
            step = train_step(state, xb, yb, tc, len(idx) * world.size / len(batch))
            for k, v in step.items():
                sums[k] = sums.get(k, 0.0) + v
            seen += len(batch)
            bar.set_postfix(loss=f"{step['loss'] / len(idx):.3f}")
    keys = sorted(sums)
    sums = dict(zip(keys, dist.all_sum([sums[k] for k in keys]).tolist(), strict=True))
    n = seen
    row = {"train_loss": sums["loss"] / n, "train_accuracy": sums["correct"] / n}
    if "clean_loss" in sums:
        row |= {"clean_loss": sums["clean_loss"] / n, "clean_accuracy": sums["clean_correct"] / n}
    return row

def write_epoch_outputs(out: Path, state: TrainState, cfg: dict[str, Any]) -> None:
    """Logs, ``last.pt``, ``network.pt`` and, last of all, ``checkpoint.pt`` (rank 0 writes;
    every rank must call it)."""
    ckpt = checkpoint_state(state, cfg)
    if dist.world().main:
        write_logs(out, state.rows)
        save_torch(out / "last.pt", cpu_state(state.model))
        if state.best:
            save_torch(out / "network.pt", state.best_model)
        save_torch(out / CHECKPOINT, ckpt)
    dist.barrier()  # the checkpoint exists before any rank goes on
    state.saved_epoch = state.epoch

def _update_best(state: TrainState, row: dict[str, float]) -> None:
    """Model selection: highest validation accuracy, ties to the lower validation loss."""
    key = (row["val_accuracy"], -row["val_loss"])
    if not state.best or key > (state.best["val_accuracy"], -state.best["val_loss"]):
        state.best = {k: row[k] for k in ("epoch", "val_accuracy", "val_loss")}
        state.best_model = cpu_state(state.model)

def run_epoch(
    state: TrainState, data: Splits, tc: dict[str, Any], device: torch.device, progress: bool
) -> dict[str, float]:
    """Train one epoch, validate, step the schedule; the epoch's log row."""
    epoch = state.epoch + 1
    t0 = time.perf_counter()
    train = train_epoch(state, data, tc, device, f"epoch {epoch}/{tc['epochs']}", progress)
    state.check_interrupt()
    val = evaluate(state.model, data.x_val, data.y_val, EVAL_BATCH, device)
    row = log_row(state, epoch, train, val, time.perf_counter() - t0)
    state.scheduler.step()
    return row

def _loop(
    out: Path, state: TrainState, cfg: dict[str, Any], data: Splits, device: torch.device,
    progress: bool,
) -> None:
    tc = cfg["train"]
    tb = tensorboard(out, state.epoch) if dist.world().main else None
    try:
        while state.epoch < tc["epochs"]:
            state.check_interrupt()
            row = run_epoch(state, data, tc, device, progress)
            state.rows.append(row)
            _update_best(state, row)
            write_epoch_outputs(out, state, cfg)
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch":
                        tb.add_scalar(k, v, int(row["epoch"]))
            if progress and dist.world().main:
                tqdm.write(
                    f"epoch {state.epoch:3d}  loss {row['train_loss']:.4f}  "
                    f"train {row['train_accuracy']:.3f}  val {row['val_accuracy']:.3f}"
                )
    finally:
        if tb is not None:
            tb.close()

def train(
    cfg: dict[str, Any], out_dir: str | Path, progress: bool = True, resume: bool = False
) -> TrainMetrics:
    """Train the network a config describes; returns the metrics written to metrics.json.

    ``resume``: continue from ``out_dir/checkpoint.pt`` (same config, ``train.epochs`` may
    grow). Ctrl-C or SIGTERM stops after the last completed epoch's checkpoint and re-raises
    KeyboardInterrupt.
    """
    out = Path(out_dir)
    world = dist.world()
    ckpt = None
    if resume:
        check_resume_config(cfg, out)
        ckpt = load_checkpoint(out)
    data: Splits = load_dataset(cfg["data"])
    if min(len(data.x_train), len(data.x_val)) < world.size:
        raise UserError(f"{world.size} processes need at least as many training and "
                        "validation samples")
    spec = network_spec(cfg, data.input_shape, data.num_classes)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.toml", dump_toml(cfg))
        write_text(out / "spec.json", spec.to_json() + "\n")

    tc = cfg["train"]
    device = pick_device(tc["device"])
    torch.manual_seed(cfg["seed"])  # the same initial weights on every rank
    model = build_network(spec, cfg["model"]["mode"],
                          seed=dist.rank_seed(cfg["seed"], world.rank)).to(device)
    optimizer = build_optimizer(model, tc)
    state = TrainState(model, optimizer, build_scheduler(optimizer, tc),
                       np.random.default_rng(cfg["seed"]))
    if world.distributed:
        state.ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    with interrupt_at_safe_points() as state.check_interrupt:
        try:
            if ckpt is not None:
                restore(state, ckpt)
                write_epoch_outputs(out, state, cfg)  # drops what a partial epoch left behind
                if state.epoch >= tc["epochs"] and world.main:
                    print(f"{out}: already trained for {state.epoch} epochs; nothing to do")
            _loop(out, state, cfg, data, device, progress)
        except KeyboardInterrupt:
            report_interrupt(out, state)
            raise
    return _finish(out, state, cfg, data, device)

def _finish(
    out: Path, state: TrainState, cfg: dict[str, Any], data: Splits, device: torch.device
) -> TrainMetrics:
    """``metrics.json`` and ``training.png`` (written by rank 0; every rank returns them)."""
    world = dist.world()
    metrics = TrainMetrics(
        dataset=data.name,
        epochs=state.epoch,
        best_epoch=int(state.best["epoch"]),
        best_val_accuracy=state.best["val_accuracy"],
        best_val_loss=state.best["val_loss"],
        train_samples=len(data.x_train),
        val_samples=len(data.x_val),
        device=str(device),
        sigma=cfg["neuron"]["sigma"],
        adv_eps=cfg["train"]["adv_eps"],
        seed=cfg["seed"],
        processes=world.size,
        torch_version=torch.__version__,
        backends=kernel.decisions(),
    )
    if not world.main:
        return metrics
    write_json(out / "metrics.json", metrics.to_dict())
    plot_training(out / "log.csv", out / "training.png")
    return metrics
