"""The robustness protocol end to end on a tiny trained network: every flag, the deployed
targets, the Lava spot check and the CLI (randhet compare: tests/test_compare.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from randhet.attack.protocol import slack
from randhet.attack.run import attack_run
from randhet.attack.scoring import Score, auc, score
from randhet.attack.settings import ProtocolConfig, as_eps_list
from randhet.cli import main

FLAGS = {
    "chance_reached", "monotone_in_eps", "iterative_at_least_single_step",
    "randomness_off_attack_succeeds", "zero_gradient_fraction",
    "transfer_weaker_than_whitebox", "noise_weaker_than_whitebox",
}


@pytest.mark.lava
def test_protocol_on_all_targets_has_every_flag_and_lava_agrees(
    tiny_run: Path, tmp_path: Path
) -> None:
    cfg = ProtocolConfig(eps=(0.0, 0.1, 0.5), attacks=("fgsm", "pgd", "noise"), eot=4,
                         steps=8, restarts=1, draws=3, samples=48,
                         targets=("float", "torch", "emulator", "lava"), lava_spot_samples=6)
    result = attack_run(tiny_run, cfg, tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "robustness.json").read_text())
    assert FLAGS == set(on_disk["flags"])
    assert all(isinstance(f["ok"], bool) for f in on_disk["flags"].values())
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert on_disk["threat_model"]["norm"] == "Linf"
    for attack in cfg.attacks:
        assert set(on_disk["curves"][attack]) == {"float", "torch", "emulator"}
        for pts in on_disk["curves"][attack].values():
            assert [p["eps"] for p in pts] == list(cfg.eps)
            assert all(p["worst_case"] <= p["mean"] + 1e-9 for p in pts)
    pgd = [p["mean"] for p in on_disk["curves"]["pgd"]["torch"]]
    assert pgd[-1] < pgd[0] - 0.3  # the attack works
    assert result["flags"]["chance_reached"]["ok"]
    conv = on_disk["convergence"]
    assert conv["eps"] == 0.1 and set(conv["accuracy"]) == {"configured", "double_steps",
                                                             "half_eot", "double_restarts"}
    assert conv["settings"]["double_steps"]["steps"] == 16
    assert conv["settings"]["half_eot"]["eot"] == 2
    assert conv["settings"]["double_restarts"] == {"steps": 8, "eot": 4, "restarts": 2}
    assert isinstance(conv["restarts_converged"], bool)
    assert "with 2x restarts" in "\n".join(result["summary"])
    speed = on_disk["speed"]
    runs = len(cfg.attacks) * sum(e > 0 for e in cfg.eps)
    assert speed["attack_runs"] == runs and speed["samples"] == 48 and speed["seconds"] > 0
    assert speed["samples_per_s"] == 48 * runs / speed["seconds"]
    assert "attacked samples/s" in result["summary"][-1]
    assert on_disk["lava_spot_check"]["agreement"] == 1.0
    assert on_disk["lava_spot_check"]["samples"] == 6


def test_attack_cli_writes_the_report_and_refuses_bad_input(tiny_run: Path, tmp_path: Path,
                                                            capsys) -> None:
    code = main(["attack", str(tiny_run), "--eps", "0,1/10", "--attacks", "fgsm,pgd",
                 "--eot", "2", "--steps", "3", "--draws", "2", "--samples", "16",
                 "--target", "torch", "--out", str(tmp_path), "--quiet",
                 "--transfer-from", str(tiny_run)])
    assert code == 0
    assert "flag chance_reached" in capsys.readouterr().out
    report = json.loads((tmp_path / "robustness.json").read_text())
    assert report["config"]["eps"] == [0.0, 0.1]
    assert report["transfer"]["source"] == str(tiny_run)
    assert report["seeds"]["training"] == 0 and report["versions"]["lava-nc"] == "0.10.0"
    assert main(["attack", str(tiny_run), "--transfer-from", str(tmp_path / "x"),
                 "--out", str(tmp_path)]) == 2
    assert "not a trained run folder" in capsys.readouterr().err
    assert main(["attack", str(tiny_run), "--eps", "0,2", "--out", str(tmp_path)]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert main(["attack", str(tiny_run), "--attacks", "cw", "--out", str(tmp_path)]) == 2
    assert "unknown attack" in capsys.readouterr().err
    assert main(["attack", str(tmp_path / "nope")]) == 2


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
            "--eot", "2", "--steps", "3", "--draws", "2", "--samples", "60",
            "--batch-size", "20", "--target", "torch,emulator", "--quiet"]
    killed = tmp_path / "killed"
    partial = killed / "robustness.partial"
    proc = subprocess.Popen([sys.executable, "-m", "randhet", *args, "--out", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list(partial.glob("attack*.json"))) < 1:
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
        r.pop("seconds"), r.pop("speed")
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
