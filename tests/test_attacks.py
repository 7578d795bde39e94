"""The attacks on a tiny trained RandHet network (sigma = 1) and on its sigma = 0 twin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from randhet.attack.apgd import APGD
from randhet.attack.base import Attack, surrogate
from randhet.attack.pgd import PGD
from randhet.attack.registry import ATTACKS, make_attack
from randhet.attack.settings import ATTACK_NAMES
from randhet.attack.transfer import Transfer
from randhet.config import load_config
from randhet.data import load_dataset
from randhet.errors import ConfigError
from randhet.models.spiking import SpikingNetwork
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
    return sum(float((model(x).argmax(1) == y).float().mean()) for _ in range(passes)) / passes


FAST = {"pgd": {"steps": 5}, "pgd_large_eps": {"steps": 5}, "apgd": {"steps": 5, "eot": 2}}


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
    assert tuple(ATTACKS) == ATTACK_NAMES == ("fgsm", "pgd", "pgd_large_eps", "apgd", "noise")
    assert all(cls.name == name for name, cls in ATTACKS.items())
    for unknown in ("spgd", "transfer"):  # transfer is a wrapper, not an attack
        with pytest.raises(ConfigError, match=unknown):
            make_attack(unknown, torch.nn.Identity(), 0.1)


def test_defaults():
    model = torch.nn.Identity()
    assert make_attack("pgd", model, 0.1).alpha == pytest.approx(0.025)
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


def test_surrogate_changes_gradient_and_restores(twin, data):
    x, y = data
    attack = Attack(twin, eps=0.1)
    neuron = twin.blocks[0].neuron
    saved = (neuron.tau_rho, neuron.scale_rho)
    _, before = attack.loss_and_grad(x, y)
    with surrogate(twin, tau_grad=0.1, scale_grad=3.0):
        assert neuron.tau_rho == pytest.approx(0.1 * float(neuron.threshold))
        _, inside = attack.loss_and_grad(x, y)
    _, after = attack.loss_and_grad(x, y)
    assert not torch.allclose(inside, before)
    assert (neuron.tau_rho, neuron.scale_rho) == saved
    assert torch.equal(after, before)


def test_pgd_matches_torchattacks_on_twin(twin, data):
    x, y = data
    ours = PGD(twin, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    theirs = torchattacks.PGD(twin, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    # projections differ by float rounding: clip(a, x - e, x + e) vs x + clip(a - x, -e, e)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert torch.equal(twin(ours).argmax(1), twin(theirs).argmax(1))
    assert (ours != x).any()


def test_apgd_matches_direct_torchattacks_call(twin, data):
    x, y = data
    ours = APGD(twin, eps=0.1, eot=1, steps=10, seed=3)(x, y)
    theirs = torchattacks.APGD(twin, norm="Linf", eps=0.1, steps=10, n_restarts=1, seed=3,
                               loss="ce", eot_iter=1)(x, y)
    assert torch.equal(ours, theirs)
    assert accuracy(twin, ours, y, 1) == accuracy(twin, theirs, y, 1) < accuracy(twin, x, y, 1)


def test_apgd_keeps_randomness_and_loops_eot(net, data):
    x, y = data
    calls: list[tuple[bool, int, torch.Tensor]] = []

    def record(module, args, out):
        draw = module.blocks[0].neuron.last_draw.current
        calls.append((module.training, len(args[0]), draw.clone()))

    hook = net.register_forward_hook(record)
    state = torch.get_rng_state()
    try:
        net.train()
        APGD(net, eps=0.1, eot=3, steps=2)(x, y)
    finally:
        hook.remove()
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert net.training  # mode restored
    assert not any(training for training, _, _ in calls)  # ran in eval mode ...
    attacked = calls[1][1]
    assert 0 < attacked <= N and len(calls) == 1 + (1 + 2) * 3  # clean pass, then looped draws
    assert all(n == attacked for _, n, _ in calls[1:])  # ... one draw per forward pass ...
    assert not torch.equal(calls[1][2], calls[2][2])  # ... and fresh decays in every pass


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
    from randhet.attack.protocol import CRAFT, _attack, _craft, _seeded
    from randhet.attack.settings import ProtocolConfig

    x, y = data
    cfg = ProtocolConfig(eot=1, steps=2)

    def unit(model, name, chunk):
        start = _seeded(cfg.seed, [model], CRAFT, 0, 1, chunk)
        return _craft(_attack(model, name, 0.1, cfg, start), x, y, cfg)

    for model, name in ((twin, "pgd"), (net, "noise")):
        first = unit(model, name, 0)
        assert torch.equal(unit(model, name, 0), first)
        assert not torch.equal(unit(model, name, 1), first)

