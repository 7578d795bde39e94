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


class Attack:
    """Base class: ``attack(x, y) -> x_adv`` with ``|x_adv - x|_inf <= eps``, x_adv in [0, 1].

    ``model`` maps pixels [B, ...] to logits [B, classes] with fresh randomness at every call.
    ``eot``: number of draws the input gradient is averaged over (1 = plain gradient).
    Subclasses implement :meth:`perturb`.
    """

    name = "attack"

    def __init__(self, model: torch.nn.Module, *, eps: float, eot: int = 1) -> None:
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if eot < 1:
            raise ValueError(f"eot must be >= 1, got {eot}")
        self.model = model
        self.eps = float(eps)
        self.eot = int(eot)

    def loss_and_grad(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample cross-entropy averaged over ``eot`` draws, and its input gradient (the
        model's parameters frozen meanwhile: :func:`frozen`)."""
        x = x.detach().requires_grad_(True)
        reps = x.repeat(self.eot, *([1] * (x.dim() - 1)))
        with frozen(self.model):
            logits = self.model(reps)
            loss = torch.nn.functional.cross_entropy(logits, y.repeat(self.eot),
                                                     reduction="none")
            loss = loss.reshape(self.eot, -1).mean(0)
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad.detach()

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
def surrogate(model: torch.nn.Module, tau_grad: float | None, scale_grad: float | None
              ) -> Iterator[None]:
    """Temporarily change the spike surrogate of every neuron, so the attacker's surrogate can
    differ from training's: ``tau_grad`` (width, in units of the threshold; smaller = sharper)
    and ``scale_grad`` (height), as in the neuron config (SLAYER ``tau_rho = tau_grad *
    threshold``, ``scale_rho = scale_grad``). None keeps the trained value."""
    saved = []
    for module in model.modules():
        if hasattr(module, "tau_rho") and hasattr(module, "scale_rho"):
            saved.append((module, module.tau_rho, module.scale_rho))
            if tau_grad is not None:
                module.tau_rho = tau_grad * float(module.threshold)
            if scale_grad is not None:
                module.scale_rho = scale_grad
    try:
        yield
    finally:
        for module, tau, scale in saved:
            module.tau_rho, module.scale_rho = tau, scale
