"""The ensemble's members: every gradient attack with every loss, readout and attacker's
surrogate, plus Square on each target it is asked to query and NES on the torch model, and how
each is built at a budget.

A model without spiking neurons (an ANN) has one surrogate (none) and one readout (its logits):
its members collapse accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from randhet.attack.base import Attack, attacker_surrogate
from randhet.attack.registry import make_attack
from randhet.attack.settings import (
    GRADIENT,
    GRADIENT_FREE,
    Budget,
    ProtocolConfig,
    parse_surrogate,
)


@dataclass(frozen=True)
class Member:
    """One way to craft an adversarial input: ``attack`` with ``loss`` on ``readout``, the
    attacker's ``surrogate`` (a :func:`~randhet.attack.settings.parse_surrogate` text), on
    ``target`` (the model it queries: torch, or emulator for Square). The gradient-free
    members (Square, NES) have no loss, readout or surrogate of their own: they lower the
    margin of the spike counts."""

    attack: str
    loss: str = "ce"
    readout: str = "counts"
    surrogate: str = "trained"
    target: str = "torch"

    @property
    def name(self) -> str:
        if self.attack in GRADIENT_FREE:
            return f"{self.attack}@{self.target}"
        return f"{self.attack}/{self.loss}/{self.readout}/{self.surrogate}"


def attack_of(name: str) -> str:
    """The attack a :attr:`Member.name` names: ``apgd/ce/counts/trained`` -> ``apgd``,
    ``square@emulator`` -> ``square``."""
    return name.split("@")[0].split("/")[0]


def follows_gradient(name: str) -> bool:
    """Whether the member called ``name`` follows an input gradient (FGSM, PGD, APGD); the
    others (Square, NES) read only outputs."""
    return attack_of(name) in GRADIENT


def _spiking(model: torch.nn.Module) -> bool:
    return any(hasattr(m, "surrogate_width") for m in model.modules())


def ensemble_members(cfg: ProtocolConfig, model: torch.nn.Module, deployed: bool
                     ) -> tuple[Member, ...]:
    """The members the settings ask for on this model (``deployed``: an emulator to query)."""
    readouts = [r for r in cfg.readouts if r in getattr(model, "readouts", ("counts",))]
    surrogates = list(cfg.surrogates) if _spiking(model) else ["trained"]
    out: list[Member] = []
    for attack in cfg.attacks:
        if attack == "fgsm":  # one step: one member, the first of each choice
            out.append(Member("fgsm", cfg.losses[0], (readouts or ["counts"])[0],
                              surrogates[0]))
        elif attack in GRADIENT:
            out += [Member(attack, loss, readout, surrogate) for loss in cfg.losses
                    for readout in readouts or ["counts"] for surrogate in surrogates]
        elif attack == "square":
            out += [Member("square", target=t) for t in cfg.square_targets
                    if t == "torch" or deployed]
        elif attack == "nes":  # ~2 x nes_samples x nes_steps queries: torch only
            out.append(Member("nes"))
    return tuple(out)


def build(member: Member, model: torch.nn.Module, queried: torch.nn.Module, eps: float,
          budget: Budget, seed: int) -> Attack:
    """``member``'s attack at L-inf ``eps`` and ``budget``; ``queried`` is the module Square
    queries (the model itself, or the deployed network); ``seed`` the attack's own generator."""
    if member.attack == "square":
        return make_attack("square", queried, eps, draws=budget.square_draws,
                           steps=budget.square_steps, restarts=budget.restarts, seed=seed)
    if member.attack == "nes":
        return make_attack("nes", queried, eps, draws=budget.square_draws,
                           samples=budget.nes_samples, steps=budget.nes_steps,
                           restarts=budget.restarts, seed=seed)
    if member.attack == "noise":
        return make_attack("noise", model, eps, seed=seed)
    opts: dict[str, object] = {"eot": budget.eot, "loss": member.loss,
                               "readout": member.readout}
    if member.attack != "fgsm":
        opts.update(steps=budget.steps, restarts=budget.restarts, seed=seed)
    return make_attack(member.attack, model, eps, **opts)


def craft(member: Member, attack: Attack, x: torch.Tensor, y: torch.Tensor, batch: int
          ) -> torch.Tensor:
    """Adversarial inputs, ``batch`` at a time, with the member's surrogate."""
    out = []
    with attacker_surrogate(attack.model, parse_surrogate(member.surrogate)):
        for i in range(0, len(x), batch):
            out.append(attack(x[i:i + batch], y[i:i + batch]))
    return torch.cat(out)
