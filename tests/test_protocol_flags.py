"""The protocol's sanity flags and convergence check on hand-made numbers: each must come out
False when its check fails and True when it holds (pure, no network)."""

from __future__ import annotations

import pytest

from randhet.attack.protocol import Curves, convergence_result, convergence_settings, flags
from randhet.attack.scoring import Score
from randhet.attack.settings import ProtocolConfig

CFG = ProtocolConfig(eps=(0.0, 0.1, 0.3), tolerance=0.03, restarts=1)
SAMPLES = 10_000  # two standard errors <= 0.01: the slack is the 0.03 floor

# an honest evaluation: every check holds
GOOD = {
    "curves": {"fgsm": [0.9, 0.5, 0.3], "pgd": [0.9, 0.3, 0.05], "noise": [0.9, 0.85, 0.6]},
    "zero_grad": 0.0,
    "twin": [0.9, 0.2, 0.0],
    "transfer": [0.9, 0.6, 0.4],
}


def run_flags(**change) -> dict:
    """flags() on GOOD with some inputs replaced (``curves`` entries are merged; None drops
    an attack)."""
    inputs = {**GOOD, **change, "curves": {**GOOD["curves"], **change.get("curves", {})}}
    curves = Curves()
    for attack, means in inputs["curves"].items():
        if means is None:
            continue
        for eps, m in zip(CFG.eps, means, strict=True):
            curves.add(attack, "torch", eps, Score(m, 0.0, m, 5))
    return flags(curves, CFG, 10, inputs["zero_grad"], inputs["twin"], inputs["transfer"],
                 SAMPLES)


def test_every_flag_is_ok_on_an_honest_evaluation():
    out = run_flags()
    assert set(out) == {
        "chance_reached", "monotone_in_eps", "iterative_at_least_single_step",
        "randomness_off_attack_succeeds", "zero_gradient_fraction",
        "transfer_weaker_than_whitebox", "noise_weaker_than_whitebox",
    }
    assert all(f["ok"] is True for f in out.values())


@pytest.mark.parametrize("flag, change", [
    # the strongest attack ends at 0.35, chance (0.1) + 0.1 is 0.2
    ("chance_reached", {"curves": {"pgd": [0.9, 0.5, 0.35], "fgsm": [0.9, 0.6, 0.5]}}),
    # FGSM's accuracy rises by 0.1 from eps 0.1 to 0.3
    ("monotone_in_eps", {"curves": {"fgsm": [0.9, 0.4, 0.5]}}),
    # PGD leaves 0.5 where FGSM leaves 0.3
    ("iterative_at_least_single_step",
     {"curves": {"pgd": [0.9, 0.5, 0.05], "fgsm": [0.9, 0.3, 0.04]}}),
    # PGD on the sigma = 0 twin leaves more than PGD on the randomized network
    ("randomness_off_attack_succeeds", {"twin": [0.9, 0.5, 0.2]}),
    # a twin curve but no PGD curve to hold it against (FGSM reaches chance instead)
    ("randomness_off_attack_succeeds",
     {"curves": {"pgd": None, "fgsm": [0.9, 0.5, 0.1]}, "transfer": []}),
    ("zero_gradient_fraction", {"zero_grad": 0.05}),
    # inputs crafted on the twin beat white-box PGD
    ("transfer_weaker_than_whitebox", {"transfer": [0.9, 0.2, 0.0]}),
    # uniform noise beats white-box PGD
    ("noise_weaker_than_whitebox", {"curves": {"noise": [0.9, 0.2, 0.0]}}),
])
def test_each_flag_fails_when_its_check_fails(flag, change):
    out = run_flags(**change)
    assert out[flag]["ok"] is False
    assert all(f["ok"] for name, f in out.items() if name != flag)  # only this check fails


def test_orderings_allow_the_tolerance_and_no_more():
    assert run_flags(curves={"fgsm": [0.9, 0.4, 0.425]})["monotone_in_eps"]["ok"]
    assert not run_flags(curves={"fgsm": [0.9, 0.4, 0.435]})["monotone_in_eps"]["ok"]
    assert run_flags(zero_grad=0.049)["zero_gradient_fraction"]["ok"]
    # noise is no gradient attack: it need not be monotone
    assert run_flags(curves={"noise": [0.9, 0.6, 0.85]})["monotone_in_eps"]["ok"]


def test_flags_without_their_inputs_are_left_out():
    out = run_flags(twin=[], transfer=[])
    assert "randomness_off_attack_succeeds" not in out
    assert "transfer_weaker_than_whitebox" not in out


def test_convergence_runs_double_steps_halve_eot_and_double_restarts():
    cfg = ProtocolConfig(eps=(0.0, 0.1, 0.2, 0.3), steps=10, eot=8, restarts=2)
    eps, runs = convergence_settings(cfg)
    assert eps == 0.2
    assert runs == {"configured": (10, 8, 2), "double_steps": (20, 8, 2),
                    "half_eot": (10, 4, 2), "double_restarts": (10, 8, 4)}


CONVERGED = {"configured": 0.4, "double_steps": 0.38, "half_eot": 0.42, "double_restarts": 0.37}
CHECKS = {"double_steps": "steps_converged", "half_eot": "eot_settled",
          "double_restarts": "restarts_converged"}


def test_convergence_holds_within_two_standard_errors():
    out = convergence_result(CFG, CONVERGED, 100)
    assert out["tolerance"] == pytest.approx(2 * (0.4 * 0.6 / 100) ** 0.5)  # 0.098
    assert all(out[flag] is True for flag in CHECKS.values())
    assert out["settings"]["double_restarts"] == {"steps": 10, "eot": 20, "restarts": 2}
    assert convergence_result(CFG, {**CONVERGED, "double_restarts": 0.31}, 100)[
        "restarts_converged"]


@pytest.mark.parametrize("run", sorted(CHECKS))
def test_convergence_fails_when_a_run_moves_the_headline(run):
    # on 1000 samples the tolerance is 0.031: a 0.1 move is no sampling noise
    out = convergence_result(CFG, {**CONVERGED, run: 0.3}, 1000)
    assert out[CHECKS[run]] is False
    assert all(out[flag] for r, flag in CHECKS.items() if r != run)
