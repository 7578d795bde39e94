"""What changes while a network trains: the model, optimizer, schedule, generators and log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from randhet.models import Network


@dataclass(frozen=True)
class EvalResult:
    accuracy: float  # unique top class = label (:mod:`randhet.readout`)
    loss: float
    spike_rate: list[float]  # mean spikes per neuron per step, per layer
    tie_rate: float = 0.0  # outputs whose top count is shared (wrong)
    silent_rate: float = 0.0  # outputs with no spike at all (wrong)

@dataclass(frozen=True)
class TrainMetrics:
    """A finished training, as ``metrics.json`` holds it (field for field)."""

    dataset: str
    epochs: int  # epochs run
    best_epoch: int  # the epoch whose weights are network.pt (best on the validation split)
    best_val_accuracy: float
    best_val_loss: float
    train_samples: int
    val_samples: int
    device: str
    sigma: float  # neuron.sigma trained with
    adv_eps: float  # train.adv_eps (0: no adversarial training)
    seed: int
    processes: int  # 1, or the torchrun world size
    torch_version: str
    backends: dict[str, str]  # randhet.kernel.decisions(): what ran each kernel op, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainState:
    """Everything that changes while training; :func:`checkpoint_state` saves all of it."""

    model: Network
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    order_rng: np.random.Generator  # shuffles the training set every epoch
    rows: list[dict[str, float]] = field(default_factory=list)  # the log, one row per epoch
    best: dict[str, float] = field(default_factory=dict)  # epoch, val_accuracy, val_loss
    best_model: dict[str, torch.Tensor] = field(default_factory=dict)
    saved_epoch: int = 0  # the epoch checkpoint.pt holds
    ddp: torch.nn.Module | None = None  # the DistributedDataParallel wrapper (torchrun only)
    # raises KeyboardInterrupt once Ctrl-C or SIGTERM came; called between batches
    check_interrupt: Callable[[], None] = field(default=lambda: None)

    @property
    def forward(self) -> torch.nn.Module:
        """The module a training step runs: the DDP wrapper when distributed, else the model."""
        return self.ddp if self.ddp is not None else self.model

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return len(self.rows)

def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
