"""Training loop: Adam on spike-count cross-entropy, model selection on the validation split.

Writes into the run folder: ``config.toml`` (resolved), ``spec.json`` (network description),
``network.pt`` (best-on-validation state dict), ``last.pt``, ``log.csv`` (one row per epoch),
``training.png`` and ``metrics.json``. Test data is never looked at here.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from randhet.config import dump_toml, network_spec
from randhet.data import Splits, load_dataset
from randhet.io import save_torch, write_json, write_text
from randhet.train.model import SpikingNetwork


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    loss: float
    spike_rate: list[float]  # mean spikes per neuron per step, per layer


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(
    model: SpikingNetwork, x: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device
) -> EvalResult:
    """Accuracy, loss and spike rates with fresh decay draws (the model is stochastic)."""
    model.eval()
    correct, loss_sum = 0, 0.0
    spikes = np.zeros(len(model.blocks))
    steps = model.spec.encoding.timesteps
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], device=device)
        yb = torch.as_tensor(y[i:i + batch_size], device=device)
        layers = model.run_encoded(model.encoder(xb))
        logits = layers[-1].sum(-1)
        loss_sum += torch.nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
        spikes += np.array([s.sum().item() for s in layers])
    sizes = np.array([layer.out_features for layer in model.spec.layers])
    rate = spikes / (len(x) * sizes * steps)
    return EvalResult(correct / len(x), loss_sum / len(x), rate.tolist())


def train(cfg: dict[str, Any], out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train the network a config describes; returns the metrics written to metrics.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.toml", dump_toml(cfg))
    data: Splits = load_dataset(cfg["data"])
    spec = network_spec(cfg, data.input_shape, data.num_classes)
    write_text(out / "spec.json", spec.to_json() + "\n")

    tc = cfg["train"]
    device = pick_device(tc["device"])
    torch.manual_seed(cfg["seed"])
    model = SpikingNetwork(spec, seed=cfg["seed"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    order_rng = np.random.default_rng(cfg["seed"])

    fields = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    fields += [f"spike_rate_{i}" for i in range(len(spec.layers))]
    log = io.StringIO()
    writer = csv.DictWriter(log, fieldnames=fields)
    writer.writeheader()
    best = {"val_accuracy": -1.0, "epoch": 0}
    for epoch in range(1, tc["epochs"] + 1):
        model.train()
        t0 = time.perf_counter()
        perm = order_rng.permutation(len(data.x_train))
        loss_sum, correct = 0.0, 0
        batches = range(0, len(perm), tc["batch_size"])
        bar = tqdm(
            batches, desc=f"epoch {epoch}/{tc['epochs']}", leave=False,
            disable=None if progress else True,  # None: shown on a terminal only
        )
        for i in bar:
            idx = perm[i:i + tc["batch_size"]]
            xb = torch.as_tensor(data.x_train[idx], device=device)
            yb = torch.as_tensor(data.y_train[idx], device=device)
            logits = model(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        val = evaluate(model, data.x_val, data.y_val, 256, device)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / len(perm),
            "train_accuracy": correct / len(perm),
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            "seconds": time.perf_counter() - t0,
        }
        row.update({f"spike_rate_{i}": r for i, r in enumerate(val.spike_rate)})
        writer.writerow(row)
        write_text(out / "log.csv", log.getvalue())
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_torch(out / "last.pt", state)
        if val.accuracy > best["val_accuracy"]:
            best = {"val_accuracy": val.accuracy, "epoch": epoch}
            save_torch(out / "network.pt", state)
        if progress:
            tqdm.write(
                f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  "
                f"train {row['train_accuracy']:.3f}  val {val.accuracy:.3f}"
            )
    metrics = {
        "dataset": data.name,
        "best_epoch": best["epoch"],
        "best_val_accuracy": best["val_accuracy"],
        "train_samples": len(data.x_train),
        "val_samples": len(data.x_val),
        "device": str(device),
        "sigma": spec.neuron.sigma,
        "seed": cfg["seed"],
        "torch_version": torch.__version__,
    }
    write_json(out / "metrics.json", metrics)
    from randhet.report.plots import plot_training

    plot_training(out / "log.csv", out / "training.png")
    return metrics


def load_trained(run_dir: str | Path) -> SpikingNetwork:
    """The best checkpoint of a run folder as a model on the CPU."""
    from randhet.spec import NetworkSpec

    run = Path(run_dir)
    spec = NetworkSpec.from_json((run / "spec.json").read_text())
    model = SpikingNetwork(spec)
    model.load_state_dict(torch.load(run / "network.pt", weights_only=True, map_location="cpu"))
    return model
