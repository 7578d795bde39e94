"""The protocol's convergence check on hand-made numbers: each check must come out False
when a run moves the headline and True when it holds (pure, no network)."""

from __future__ import annotations

import pytest

from randhet.attack.protocol import ProtocolConfig, convergence_result, convergence_settings

CFG = ProtocolConfig(eps=(0.0, 0.1, 0.3), tolerance=0.03)


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
