"""The robustness protocol end to end on a tiny trained network: every flag, the deployed
targets, the Lava spot check and the CLI (randhet compare: tests/test_compare.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from randhet.attack.flags import slack
from randhet.attack.results import Curve, strongest_alone
from randhet.attack.run import attack_run
from randhet.attack.scoring import Score, auc, score
from randhet.attack.settings import ProtocolConfig, as_eps_list
from randhet.cli import main

FLAGS = {
    "unbounded_attack_succeeds", "monotone_in_eps", "iterative_at_least_single_step",
    "randomness_off_attack_succeeds", "gradient_free_not_stronger", "gradient_signal_to_noise",
    "loss_rises_along_gradient", "transfer_weaker_than_whitebox", "noise_weaker_than_whitebox",
    "budget_converged",
}
SMALL = dict(eot=2, steps=4, restarts=1, square_steps=10, square_draws=2, draws=3,
             selection_draws=3, surrogates=("trained", "width=0.3"), readouts=("counts",))


@pytest.mark.lava
def test_protocol_on_all_targets_has_every_flag_and_lava_agrees(
    tiny_run: Path, tmp_path: Path
) -> None:
    cfg = ProtocolConfig(eps=(0.0, 0.1, 0.5), attacks=("fgsm", "apgd", "square", "noise"),
                         samples=48, doublings=1, max_doublings=2,
                         targets=("float", "torch", "emulator", "lava"), lava_spot_samples=6,
                         **SMALL)
    result = attack_run(tiny_run, cfg, tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "robustness.json").read_text())
    assert on_disk == json.loads(json.dumps(result.to_json()))
    assert FLAGS == {f["name"] for f in on_disk["flags"]}
    assert all(isinstance(f["ok"], bool) for f in on_disk["flags"])
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert on_disk["threat_model"]["norm"] == "Linf"
    assert result.members == ("fgsm/ce/counts/trained", "apgd/ce/counts/trained",
                              "apgd/ce/counts/width=0.3", "apgd/dlr/counts/trained",
                              "apgd/dlr/counts/width=0.3", "square@torch", "square@emulator")
    assert {c.target for c in result.ensemble} == {"float", "torch", "emulator"}
    for c in (*result.ensemble, *result.per_attack, *result.baselines):
        assert [p.eps for p in c.points] == list(cfg.eps)
        assert all(p.worst_case <= p.mean + 1e-9 and p.ci_low <= p.mean <= p.ci_high
                   for p in c.points)
    ens = result.curve("ensemble")
    assert ens is not None and ens.means()[-1] < ens.means()[0] - 0.3  # the ensemble works
    for member in result.per_attack:  # per sample the worst: never above a member's mean
        assert all(e <= m + 0.15 for e, m in zip(ens.means(), member.means(), strict=True))
    heads = [h for h in result.headline if h.target == "torch"]
    assert [h.eps for h in heads] == [0.0, 0.1, 0.5]
    assert sum(heads[1].winners.values()) == 48
    conv = {c.eps: c for c in result.convergence}
    assert 1 <= conv[0.1].levels <= 2 and conv[0.1].doublings[0].doubled == "restarts"
    assert "fall per doubling" in conv[0.1].note or "nothing left" in conv[0.1].note
    assert "robust accuracy" in result.summary[0]
    speed = on_disk["speed"]
    assert speed["samples"] == 48 and speed["seconds"] > 0
    assert on_disk["lava_spot_check"]["agreement"] == 1.0
    assert on_disk["lava_spot_check"]["samples"] == 6


def test_attack_cli_writes_the_report_and_refuses_bad_input(tiny_run: Path, tmp_path: Path,
                                                            capsys) -> None:
    code = main(["attack", str(tiny_run), "--eps", "0,1/10", "--attacks", "fgsm,pgd",
                 "--losses", "dlr", "--readouts", "voltage", "--surrogates", "width=0.5",
                 "--eot", "2", "--steps", "3", "--draws", "2", "--samples", "16",
                 "--doublings", "0", "--max-doublings", "1", "--selection-draws", "2",
                 "--target", "torch", "--out", str(tmp_path), "--quiet",
                 "--transfer-from", str(tiny_run)])
    assert code == 0
    assert "flag unbounded_attack_succeeds" in capsys.readouterr().out
    report = json.loads((tmp_path / "robustness.json").read_text())
    assert report["config"]["eps"] == [0.0, 0.1]
    assert report["members"] == ["fgsm/dlr/voltage/width=0.5", "pgd/dlr/voltage/width=0.5"]
    assert report["transfer_source"] == str(tiny_run)
    assert report["seeds"]["training"] == 0 and report["versions"]["lava-nc"] == "0.10.0"
    assert main(["attack", str(tiny_run), "--transfer-from", str(tmp_path / "x"),
                 "--out", str(tmp_path)]) == 2
    assert "not a trained run folder" in capsys.readouterr().err
    assert main(["attack", str(tiny_run), "--eps", "0,2", "--out", str(tmp_path)]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert main(["attack", str(tiny_run), "--attacks", "cw", "--out", str(tmp_path)]) == 2
    assert "unknown attack" in capsys.readouterr().err
    assert main(["attack", str(tiny_run), "--surrogates", "sharp", "--out", str(tmp_path)]) == 2
    assert "width=W" in capsys.readouterr().err
    assert main(["attack", str(tiny_run), "--max-doublings", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--max-doublings must be at least 'attack.doublings' (the run's config)" in err
    assert main(["attack", str(tmp_path / "nope")]) == 2


def test_attack_cli_takes_what_no_flag_sets_from_the_runs_own_attack_table(
        tiny_run: Path, tmp_path: Path) -> None:
    """``randhet attack RUN`` repeats the protocol the run's config asked for (as ``randhet
    run`` ran it), with the flags given on top; not the schema's defaults."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("robustness*"))
    text = (run / "config.toml").read_text()
    start = text.index("[attack]")
    end = text.find("\n[", start + 1)
    table = ('[attack]\neps = [0.0, 0.1]\nattacks = ["fgsm"]\neot = 1\ndraws = 2\n'
             'selection_draws = 2\nsamples = 8\nbatch_size = 8\ndoublings = 0\n'
             'max_doublings = 1\ntargets = ["torch"]\n')
    (run / "config.toml").write_text(text[:start] + table + (text[end:] if end > 0 else ""))
    assert main(["attack", str(run), "--draws", "3", "--quiet"]) == 0
    report = json.loads((run / "robustness.json").read_text())
    assert report["config"]["samples"] == 8 and report["config"]["eps"] == [0.0, 0.1]
    assert report["members"] == ["fgsm/ce/counts/trained"] and report["config"]["eot"] == 1
    assert report["config"]["draws"] == 3  # the flag on top of the run's table


def test_randomness_off_attacks_the_deterministic_twin_in_its_own_folder(
        tiny_run: Path, tmp_path: Path, capsys) -> None:
    from randhet.attack.run import attack_folder
    from randhet.network import read_network

    own = (tiny_run / "network.net").read_bytes()
    out = tmp_path / "twin"
    args = ["attack", str(tiny_run), "--randomness-off", "--eps", "0,0.1", "--attacks",
            "fgsm", "--eot", "2", "--draws", "4", "--selection-draws", "2", "--samples", "24",
            "--doublings", "0", "--max-doublings", "1", "--target", "torch,emulator",
            "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert "sigma = 0 twin of" in capsys.readouterr().out
    report = json.loads((out / "robustness.json").read_text())
    assert report["sigma"] == 0.0 and report["trained_sigma"] == 1.0
    assert report["randomness_off"] is True
    assert read_network(out / "network.net").spec.neuron.sigma == 0.0
    assert (tiny_run / "network.net").read_bytes() == own  # the run's own file is untouched
    for curve in report["ensemble"]:  # no draws: every scoring draw gives the same answer
        assert all(p["worst_case"] == p["mean"] for p in curve["points"])
    randomized = json.loads(json.dumps(attack_run(  # the same settings on the run as trained
        tiny_run, ProtocolConfig(eps=(0.0, 0.1), attacks=("fgsm",), eot=2, draws=4,
                                 selection_draws=2, samples=24, doublings=0, max_doublings=1,
                                 targets=("torch", "emulator")),
        tmp_path / "as-trained", progress=False).to_json()))
    assert randomized["sigma"] == 1.0 and randomized["randomness_off"] is False
    assert any(p["worst_case"] < p["mean"] for c in randomized["ensemble"]
               for p in c["points"])
    assert attack_folder(tiny_run, None, randomness_off=True) == tiny_run / "sigma0"
    assert attack_folder(tiny_run, None) == tiny_run


def test_scoring_reports_mean_spread_and_worst_case() -> None:
    y = torch.tensor([0, 1, 2, 3])
    answers = [[0, 1, 2, 0], [0, 1, 0, 0], [0, 1, 2, 3]]  # three draws

    def predict(x: torch.Tensor, r: int):
        import numpy as np

        return np.array(answers[r])

    s = score(predict, torch.zeros(4, 1), y, 3)
    assert s == Score(mean=(3 + 2 + 4) / 12, std=s.std, worst_case=0.5, draws=3)
    assert s.std == pytest.approx((((0.75 - 0.75) ** 2 + 0.25**2 + 0.25**2) / 3) ** 0.5)


def test_auc_uses_the_real_eps_spacing_and_eps_lists_parse() -> None:
    assert auc([0, 0.1, 0.2], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert auc([0, 0.1, 0.4], [1.0, 1.0, 0.0]) == pytest.approx((0.1 + 0.15) / 0.4)
    assert as_eps_list("0, 1/255, 8/255") == (0.0, 1 / 255, 8 / 255)
    with pytest.raises(ValueError):
        as_eps_list("0,abc")
    assert slack(0.5, 100, 0.01) == pytest.approx(0.1)
    assert slack(0.99, 10000, 0.03) == 0.03


def test_interrupted_attack_resumes_to_the_same_result(tiny_run: Path, tmp_path: Path,
                                                       capsys) -> None:
    """SIGTERM after the first finished unit, then the same command: the finished units are
    reused and robustness.json equals an uninterrupted run's; the partial folder is removed."""
    import signal
    import subprocess
    import sys
    import time

    args = ["attack", str(tiny_run), "--eps", "0,0.1,0.3", "--attacks", "fgsm,pgd",
            "--readouts", "counts", "--surrogates", "trained",
            "--eot", "2", "--steps", "3", "--draws", "2", "--samples", "60",
            "--doublings", "1", "--max-doublings", "1", "--selection-draws", "2",
            "--batch-size", "20", "--target", "torch,emulator", "--quiet"]
    killed = tmp_path / "killed"
    partial = killed / "robustness.partial"
    proc = subprocess.Popen([sys.executable, "-m", "randhet", *args, "--out", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list(partial.glob("unit*.json"))) < 1:
        assert time.monotonic() < deadline, "no finished unit within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0 and not (killed / "robustness.json").exists()
    done_before = len([p for p in partial.glob("*.json") if p.name != "fingerprint.json"])
    assert done_before >= 1
    capsys.readouterr()
    assert main([*args, "--out", str(killed)]) == 0
    assert f"resumed: {done_before}" in capsys.readouterr().out
    assert not partial.exists()
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    a, b = (json.loads((d / "robustness.json").read_text()) for d in (killed, tmp_path / "whole"))
    for r in (a, b):
        r.pop("seconds"), r.pop("speed"), r.pop("summary")
    assert a == b


def test_unit_cache_round_trips_and_drops_results_of_other_settings(tmp_path: Path) -> None:
    import numpy as np

    from randhet.attack.cache import UnitCache

    entries = {("pgd", "torch", 0, 1): np.array([[True, False], [True, True]]),
               ("zero_grad",): 0.25, ("lava",): {"agreement": 1.0}}
    UnitCache(tmp_path / "p", {"eot": 2}).save("u1", entries)
    again = UnitCache(tmp_path / "p", {"eot": 2}).load("u1")
    assert again is not None and again.keys() == entries.keys()
    assert np.array_equal(again["pgd", "torch", 0, 1], entries["pgd", "torch", 0, 1])
    assert again["pgd", "torch", 0, 1].dtype == bool and again["zero_grad",] == 0.25
    assert again["lava",] == {"agreement": 1.0}
    assert UnitCache(tmp_path / "p", {"eot": 4}).load("u1") is None  # other settings: dropped
    assert UnitCache(tmp_path / "p", {"eot": 2}).load("u1") is None  # ... for good


def test_nes_is_a_gradient_free_member_of_the_ensemble(tiny_run: Path, tmp_path: Path) -> None:
    """``--attacks ...,nes``: NES joins the ensemble as a torch member that reads only outputs;
    the gradient-free flag and the per-kind numbers count it with Square."""
    code = main(["attack", str(tiny_run), "--eps", "0,0.3", "--attacks", "fgsm,nes",
                 "--nes-steps", "4", "--nes-samples", "8", "--eot", "2", "--draws", "2",
                 "--selection-draws", "2", "--samples", "16", "--doublings", "0",
                 "--max-doublings", "0", "--target", "torch", "--out", str(tmp_path),
                 "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "robustness.json").read_text())
    assert report["members"] == ["fgsm/ce/counts/trained", "nes@torch"]
    assert report["config"]["nes_steps"] == 4 and report["config"]["nes_samples"] == 8
    assert "gradient_free_not_stronger" in {f["name"] for f in report["flags"]}
    curves = tuple(Curve.from_dict(c) for c in report["per_attack"])
    nes = next(c for c in curves if c.name == "nes@torch")
    assert nes.points[1].mean < nes.points[0].mean - 0.2
    assert strongest_alone(curves, [0.3], False) == (nes.points[1].mean,)
