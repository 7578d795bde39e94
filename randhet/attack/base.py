"""The attack base class: L-inf attacks on [0, 1] pixels with batched EOT gradients.

A RandHet network draws fresh decays for every sample of every forward pass, so replicating a
batch ``eot`` times and running it once gives ``eot`` independent draws per input: the
expectation-over-transformation gradient is the mean of their loss gradients, computed in ONE
forward/backward pass (draws as an extra batch dimension), not in a loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from randhet import kernel
from randhet.attack.losses import LOSSES, loss_fn, margin
from randhet.attack.settings import Surrogate


class Attack:
    """Base class: ``attack(x, y) -> x_adv`` with ``|x_adv - x|_inf <= eps``, x_adv in [0, 1].

    ``model`` maps pixels [B, ...] to class scores with fresh randomness at every call
    (:meth:`~randhet.models.base.Network.scores`). ``eot``: number of draws the loss and its
    input gradient are averaged over (1 = one draw); ``loss``: ``ce`` or ``dlr``
    (:mod:`randhet.attack.losses`); ``readout``: the scores the loss is taken on (``counts``,
    or the output layer's ``voltage`` or ``current`` summed over time). Subclasses implement
    :meth:`perturb`.
    """

    name = "attack"

    def __init__(self, model: torch.nn.Module, *, eps: float, eot: int = 1, loss: str = "ce",
                 readout: str = "counts") -> None:
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if eot < 1:
            raise ValueError(f"eot must be >= 1, got {eot}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r} (available: {', '.join(LOSSES)})")
        readouts = getattr(model, "readouts", ("counts",))
        if readout not in readouts:
            raise ValueError(f"readout {readout!r} is not one of {', '.join(readouts)}")
        self.model = model
        self.eps = float(eps)
        self.eot = int(eot)
        self.loss = loss
        self.readout = readout

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The model's class scores [B, classes] on the attack's readout (one fresh draw)."""
        if self.readout == "counts":
            return self.model(x)
        return self.model.scores(x, self.readout)  # type: ignore[operator]

    def draw_losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss averaged over ``eot`` draws, in one batched pass (the draws as an
        extra batch dimension), with its graph."""
        reps = x.repeat(self.eot, *([1] * (x.dim() - 1)))
        loss = loss_fn(self.loss, self.scores(reps), y.repeat(self.eot),
                       self.readout == "counts")
        return loss.reshape(self.eot, -1).mean(0)

    def loss_and_grad(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The EOT loss [B] (:meth:`draw_losses`) and its input gradient (the model's
        parameters frozen meanwhile: :func:`frozen`; subnormal floats flushed to zero:
        :func:`randhet.kernel.subnormals_flushed`, as a narrow surrogate's gradients underflow
        and subnormals slow every operation on them)."""
        x = x.detach().requires_grad_(True)
        with frozen(self.model), kernel.subnormals_flushed():
            loss = self.draw_losses(x, y)
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad.detach()

    @torch.no_grad()
    def eot_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The EOT loss [B] of ``eot`` fresh draws, without a gradient."""
        return self.draw_losses(x, y)

    @torch.no_grad()
    def mean_margin(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        """The margin [B] of the model's forward scores (spike counts) averaged over ``eot``
        draws, the model's generator seeded with ``seed``: inputs scored with one seed are
        compared on the same draws (what the gradient-free attacks accept a change on)."""
        gen = getattr(self.model, "generator", None)
        if gen is not None:
            gen.manual_seed(seed)
        reps = x.repeat(self.eot, *([1] * (x.dim() - 1)))
        return margin(self.model(reps).float(), y.repeat(self.eot)).reshape(self.eot, -1).mean(0)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Clip to the eps ball around x and to [0, 1]."""
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(0, 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            if self.eps == 0:
                return x.detach().clone()
            return self.perturb(x.detach(), y).detach()
        finally:
            self.model.train(was_training)


def draw_seed(generator: torch.Generator) -> int:
    """A fresh seed from an attack's own ``generator`` (the gradient-free attacks seed the
    model's draws with it, so that the inputs they compare share their draws)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """The model's parameters stop requiring gradients inside the block (restored after).
    An attack wants the input gradient alone: this way autograd records no graph through the
    decay draws and the neurons skip the decay-gradient terms. The input gradient's bits are
    the same (``tests/test_attacks.py``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextlib.contextmanager
def attacker_surrogate(model: torch.nn.Module, choice: Surrogate) -> Iterator[None]:
    """Every spiking neuron of ``model`` takes the attacker's surrogate inside the block (the
    trained one is restored after): SLAYER's exponential ``choice.width`` thresholds wide, or
    the straight-through estimator dS/dV = 1. The forward spikes are the same bits."""
    saved = []
    for module in model.modules():
        if hasattr(module, "surrogate_width") and hasattr(module, "straight_through"):
            saved.append((module, module.tau_rho, module.straight_through))
            if choice.width is not None:
                module.surrogate_width = choice.width
            if choice.straight_through:
                module.straight_through = True
    try:
        yield
    finally:
        for module, tau, straight in saved:
            module.tau_rho, module.straight_through = tau, straight
