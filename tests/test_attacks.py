"""The attacks on a tiny trained RandHet network (sigma = 1) and on its sigma = 0 twin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from randhet.attack.apgd import APGD, checkpoints
from randhet.attack.base import Attack, attacker_surrogate
from randhet.attack.losses import dlr, loss_fn, margin
from randhet.attack.pgd import PGD
from randhet.attack.registry import ATTACKS, make_attack
from randhet.attack.settings import ATTACK_NAMES, Surrogate
from randhet.attack.square import Square, fraction
from randhet.attack.transfer import Transfer
from randhet.config import load_config
from randhet.data import load_dataset
from randhet.errors import ConfigError
from randhet.models.spiking import SpikingNetwork
from randhet.readout import decide
from randhet.runs import open_run

N = 48  # test images


@pytest.fixture(scope="module", autouse=True)
def one_thread(tiny_run: Path):
    """The tensors here are tiny: one intra-op thread is several times faster than two on a
    loaded 2-core machine (no OpenMP spinning). Set after the shared run is trained; restored
    afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tiny_run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The first N digits test images [N, 1, 8, 8] in [0, 1] and their labels."""
    splits = load_dataset(load_config(tiny_run / "config.toml")["data"])
    return torch.as_tensor(splits.x_test[:N]), torch.as_tensor(splits.y_test[:N])


@pytest.fixture
def net(tiny_run: Path) -> SpikingNetwork:
    """The trained network, freshly loaded (its decay generator starts from the same seed)."""
    return open_run(tiny_run).model()


@pytest.fixture
def twin(net: SpikingNetwork) -> SpikingNetwork:
    """The same weights with sigma = 0: a deterministic network."""
    spec = net.spec
    model = SpikingNetwork(dataclasses.replace(spec, neuron=dataclasses.replace(spec.neuron,
                                                                                sigma=0.0)))
    model.load_state_dict(net.state_dict())
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int = 5) -> float:
    """Accuracy averaged over ``passes`` forward passes (fresh decay draws each)."""
    model.eval()
    return sum(float((decide(model(x)) == y).float().mean()) for _ in range(passes)) / passes


FAST = {"pgd": {"steps": 5}, "pgd_large_eps": {"steps": 5}, "apgd": {"steps": 5, "eot": 2},
        "square": {"steps": 5, "draws": 2}, "nes": {"steps": 3, "samples": 4, "draws": 2}}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_stays_in_ball_and_pixel_range(name, eps, net, twin, data):
    x, y = data
    model = net
    before = model.training
    x_adv = make_attack(name, model, eps, **FAST.get(name, {}))(x, y)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv != x).any()
    assert model.training == before


def test_registry_names_and_unknown():
    assert tuple(ATTACKS) == ATTACK_NAMES == ("fgsm", "pgd", "pgd_large_eps", "apgd", "square",
                                              "nes", "noise")
    assert all(cls.name == name for name, cls in ATTACKS.items())
    for unknown in ("spgd", "transfer"):  # transfer is a wrapper, not an attack
        with pytest.raises(ConfigError, match=unknown):
            make_attack(unknown, torch.nn.Identity(), 0.1)


def test_defaults():
    model = torch.nn.Identity()
    assert make_attack("pgd", model, 0.1).alpha == pytest.approx(0.025)
    # a fixed step: twice the steps is twice the path, not a finer walk
    assert make_attack("pgd", model, 0.1, steps=40).alpha == pytest.approx(0.025)
    large = make_attack("pgd_large_eps", model, 0.4)
    assert (large.steps, large.alpha, large.random_start) == (20, pytest.approx(0.1), True)
    apgd = make_attack("apgd", model, 0.1)
    assert (apgd.steps, apgd.eot, apgd.restarts) == (100, 20, 1)


def test_fgsm_and_pgd_lower_accuracy(net, data):
    x, y = data
    clean = accuracy(net, x, y)
    fgsm = accuracy(net, make_attack("fgsm", net, 0.1, eot=4)(x, y), y)
    pgd = accuracy(net, make_attack("pgd", net, 0.1, eot=4)(x, y), y)
    assert clean >= 0.75
    assert fgsm <= clean - 0.1
    assert pgd <= clean - 0.15


def test_pgd_large_eps_reaches_chance(net, data):
    x, y = data
    assert accuracy(net, make_attack("pgd", net, 0.5, eot=4)(x, y), y) <= 0.25
    assert accuracy(net, make_attack("pgd_large_eps", net, 0.5, steps=10)(x, y), y) <= 0.25


def test_noise_weaker_than_pgd(net, data):
    x, y = data
    noise = accuracy(net, make_attack("noise", net, 0.1)(x, y), y)
    pgd = accuracy(net, make_attack("pgd", net, 0.1, eot=4)(x, y), y)
    assert noise >= pgd + 0.15


def test_eot_is_exact_on_the_deterministic_twin(twin, data):
    x, y = data
    loss1, grad1 = Attack(twin, eps=0.1, eot=1).loss_and_grad(x, y)
    loss8, grad8 = Attack(twin, eps=0.1, eot=8).loss_and_grad(x, y)
    assert grad1.abs().sum() > 0
    torch.testing.assert_close(loss8, loss1)
    torch.testing.assert_close(grad8, grad1)
    adv1 = PGD(twin, eps=0.1, eot=1, steps=5)(x, y)
    adv8 = PGD(twin, eps=0.1, eot=8, steps=5)(x, y)
    assert torch.equal(adv1, adv8)


def test_batched_eot_draws_independent_decays(net, data):
    x, y = data
    seen: list[torch.Tensor] = []
    hook = net.register_forward_hook(lambda m, args, out: seen.append(out.detach()))
    try:
        loss, _ = Attack(net, eps=0.1, eot=4).loss_and_grad(x, y)
    finally:
        hook.remove()
    assert len(seen) == 1 and seen[0].shape == (4 * N, 10)  # one batched pass
    per_draw = F.cross_entropy(seen[0], y.repeat(4), reduction="none").reshape(4, N)
    torch.testing.assert_close(per_draw.mean(0), loss)
    assert (per_draw[0] != per_draw[1]).any() and (per_draw[2] != per_draw[3]).any()
    decays = net.blocks[0].neuron.last_draw.current.reshape(4, N, -1)  # replica, sample, neuron
    assert not torch.equal(decays[0], decays[1])


def test_frozen_parameters_keep_the_input_gradient_bits(tiny_run, data):
    """loss_and_grad freezes the parameters (no decay-gradient work): the loss and the input
    gradient are the bits of the unfrozen pass on the same draws, and the flags come back."""
    x, y = data
    frozen_net, free_net = open_run(tiny_run).model(), open_run(tiny_run).model()
    flags = [p.requires_grad for p in frozen_net.parameters()]
    loss, grad = Attack(frozen_net.eval(), eps=0.1, eot=3).loss_and_grad(x, y)
    assert [p.requires_grad for p in frozen_net.parameters()] == flags and any(flags)
    free_net.eval()
    xg = x.detach().requires_grad_(True)
    logits = free_net(xg.repeat(3, 1, 1, 1))
    expect = F.cross_entropy(logits, y.repeat(3), reduction="none").reshape(3, -1).mean(0)
    (expect_grad,) = torch.autograd.grad(expect.sum(), xg)
    assert grad.abs().sum() > 0
    assert torch.equal(loss, expect.detach()) and torch.equal(grad, expect_grad)


def test_surrogate_width_is_in_thresholds_and_restores(twin, data):
    x, y = data
    attack = Attack(twin, eps=0.1)
    neuron = twin.blocks[0].neuron
    saved = (neuron.tau_rho, neuron.straight_through)
    assert neuron.surrogate_width == pytest.approx(100 * twin.spec.neuron.tau_grad)
    _, before = attack.loss_and_grad(x, y)
    with attacker_surrogate(twin, Surrogate(width=0.5)):
        assert neuron.surrogate_width == pytest.approx(0.5)
        # SLAYER's exponential: a voltage half a threshold away gets exp(-1) of the peak
        assert neuron.tau_rho * 100 == pytest.approx(0.5 * float(neuron.threshold))
        _, sharp = attack.loss_and_grad(x, y)
    with attacker_surrogate(twin, Surrogate(straight_through=True)):
        assert neuron.straight_through
        _, straight = attack.loss_and_grad(x, y)
    _, after = attack.loss_and_grad(x, y)
    assert not torch.allclose(sharp, before) and not torch.allclose(straight, before)
    assert (neuron.tau_rho, neuron.straight_through) == saved
    assert torch.equal(after, before)
    assert Surrogate().label == "trained" and Surrogate(0.5).label == "width=0.5"


def test_pgd_matches_torchattacks_on_twin(twin, data):
    x, y = data
    ours = PGD(twin, eps=0.1, alpha=0.02, steps=10, random_start=False, keep="last")(x, y)
    theirs = torchattacks.PGD(twin, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    # projections differ by float rounding: clip(a, x - e, x + e) vs x + clip(a - x, -e, e)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert torch.equal(twin(ours).argmax(1), twin(theirs).argmax(1))
    assert (ours != x).any()


def test_apgd_checkpoints_are_autoattacks():
    # AutoAttack: first check after 22 % of 100 steps, then every 19, 16, 13, 10, 7, 6, 6
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9]  # intervals of at least one step


def test_apgd_batches_eot_keeps_randomness_and_returns_its_best_point(net, data):
    x, y = data
    calls: list[tuple[bool, int]] = []
    hook = net.register_forward_hook(lambda m, args, out: calls.append((m.training,
                                                                        len(args[0]))))
    state = torch.get_rng_state()
    try:
        net.train()
        attack = APGD(net, eps=0.1, eot=3, steps=4, seed=2)
        x_adv = attack(x, y)
    finally:
        hook.remove()
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert net.training  # mode restored
    assert calls == [(False, 3 * N)] * (1 + 4)  # the start and every step: one batched pass
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_apgd_beats_its_start_and_pgd_on_the_deterministic_twin(twin, data):
    x, y = data
    apgd = APGD(twin, eps=0.1, eot=1, steps=20, seed=1, loss="dlr")
    best, loss = apgd.run_once(x, y)
    assert torch.equal(apgd.eot_loss(best, y), loss)  # the loss returned is the point's
    pgd = PGD(twin, eps=0.1, steps=20, seed=1, loss="dlr")
    assert loss.mean() >= pgd.eot_loss(pgd(x, y), y).mean() - 0.05


def test_dlr_is_scale_invariant_and_counts_tie_safely():
    z = torch.tensor([[3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    y = torch.tensor([0, 1])
    assert torch.equal(margin(z, y), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(dlr(2 * z[:1], y[:1], 1e-12), dlr(z[:1], y[:1], 1e-12))
    assert dlr(z, y, 1.0)[1] == 0  # a three-way tie of counts: finite, not 0 / 1e-12
    assert loss_fn("dlr", z, y, counts=True).isfinite().all()
    with pytest.raises(ValueError, match="3 classes"):
        dlr(z[:, :2], y, 1.0)


def test_continuous_readouts_share_the_draw_and_carry_a_gradient(net, data):
    x, y = data
    net.eval()
    net.generator.manual_seed(4)
    counts = net(x)
    net.generator.manual_seed(4)
    volts = net.scores(x, "voltage")
    net.generator.manual_seed(4)
    assert torch.equal(net.scores(x, "counts"), counts)  # the same draw, the same spikes
    assert volts.shape == counts.shape and not torch.equal(volts, counts)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net.scores(xg, "current").sum(), xg)
    assert g.abs().sum() > 0
    assert Attack(net, eps=0.1, readout="voltage", loss="dlr").loss_and_grad(x, y)[1].any()
    with pytest.raises(ValueError, match="readout"):
        Attack(net, eps=0.1, readout="rates")


def test_square_schedule_and_paired_acceptance_lower_the_margin(twin, data):
    x, y = data
    assert [fraction(0.8, s, 10000) for s in (0, 10, 11, 51, 9000)] == [
        0.8, 0.8, 0.4, 0.2, 0.8 / 512]
    square = Square(twin, eps=0.2, draws=1, steps=30, seed=0)
    x_adv = square(x, y)
    with torch.no_grad():
        before, after = margin(twin(x), y), margin(twin(x_adv), y)
    assert after.mean() < before.mean()
    assert accuracy(twin, x_adv, y, 1) < accuracy(twin, x, y, 1)


def test_square_attacks_the_deployed_integer_network(tiny_run, data):
    """No gradient at all: Square on the emulated deployment lowers the deployment's own
    accuracy (scored on fresh draws of the deployed network)."""
    from randhet.deploy.predictors import DeployedScores
    from randhet.network import read_network

    x, y = data
    deployed = DeployedScores(read_network(tiny_run / "network.net"))
    x_adv = Square(deployed, eps=0.3, draws=2, steps=20, seed=0)(x, y)
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    clean = accuracy(deployed, x, y, 2)
    assert accuracy(deployed, x_adv, y, 2) <= clean - 0.2


class NoGradient(torch.nn.Module):
    """``model`` with its input gradient cut to zero (a gradient mask): the same outputs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.generator = model.generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * 0 + x.detach())


def test_nes_breaks_a_network_whose_gradient_is_masked_where_pgd_cannot(twin, data):
    """NES estimates the margin's gradient from output queries alone: with the input gradient
    cut to zero, PGD walks nowhere from its random start, NES still lowers the accuracy."""
    x, y = data
    masked = NoGradient(twin).eval()
    clean = accuracy(masked, x, y, 1)
    pgd = PGD(masked, eps=0.2, steps=10, seed=0)(x, y)
    nes = make_attack("nes", masked, 0.2, steps=10, samples=16, draws=1, seed=0)(x, y)
    assert (nes - x).abs().max() <= 0.2 + 1e-6 and nes.min() >= 0 and nes.max() <= 1
    assert accuracy(masked, pgd, y, 1) >= clean - 0.1
    assert accuracy(masked, nes, y, 1) <= clean - 0.3
    with torch.no_grad():  # what it returns is its best iterate: never above the clean margin
        assert (margin(twin(nes), y) <= margin(twin(x), y)).all()


def test_nes_is_seeded_and_refuses_bad_settings(net, data):
    x, y = data
    runs = []
    for _ in range(2):
        net.generator.manual_seed(3)
        runs.append(make_attack("nes", net, 0.1, steps=2, samples=4, draws=2, seed=7,
                                restarts=2)(x, y))
    assert torch.equal(runs[0], runs[1])
    for bad in ({"samples": 0}, {"steps": 0}, {"restarts": 0}, {"smoothing": 0.0}):
        with pytest.raises(ValueError):
            make_attack("nes", net, 0.1, **bad)


def test_pgd_restarts_keep_highest_loss(twin, data):
    x, y = data
    one = PGD(twin, eps=0.1, steps=3, seed=5)
    three = PGD(twin, eps=0.1, steps=3, seed=5, restarts=3)
    loss_one, loss_three = one.eot_loss(one(x, y), y), three.eot_loss(three(x, y), y)
    assert (loss_three >= loss_one).all() and (loss_three > loss_one).any()


def test_transfer_is_the_attack_crafted_on_the_source(twin, net, data):
    x, y = data
    opts = {"steps": 5, "random_start": False}
    transfer = Transfer(make_attack("pgd", twin, 0.1, **opts))
    crafted = transfer(x, y)
    assert transfer.source is twin
    assert torch.equal(crafted, PGD(twin, eps=0.1, **opts)(x, y))
    assert accuracy(net, crafted, y) < accuracy(net, x, y)
    with pytest.raises(TypeError):
        Transfer(transfer)  # a wrapper wraps an attack, not another wrapper


def test_zero_eps_returns_input(net, data):
    x, y = data
    for name in sorted(ATTACKS):
        assert torch.equal(make_attack(name, net, 0.0)(x, y), x)


def test_protocol_units_seed_their_own_random_starts_and_noise(twin, net, data):
    """Each unit of the protocol passes a seed from its identity to the attack: two units get
    different random starts (PGD on the deterministic twin: only the start can differ) and
    noise; the same unit twice gets the same."""
    from randhet.attack.members import Member, build, craft
    from randhet.attack.schedule import CRAFT, _seeded
    from randhet.attack.settings import ProtocolConfig

    x, y = data
    budget = ProtocolConfig(eot=1, steps=2).budget(0)

    def unit(model, name, chunk):
        start = _seeded(0, [model], CRAFT, 0, 1, chunk)
        member = Member(name)
        return craft(member, build(member, model, model, 0.1, budget, start), x, y, 64)

    for model, name in ((twin, "pgd"), (net, "noise")):
        first = unit(model, name, 0)
        assert torch.equal(unit(model, name, 0), first)
        assert not torch.equal(unit(model, name, 1), first)
