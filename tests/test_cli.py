"""The command line end to end, and its error paths: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import pytest
import torch

from randhet.cli import COMMANDS, build_parser, main

TINY_TOML = """
name = "tiny"
seed = 3
[encoding]
timesteps = 8
[model]
layers = ["dense:24"]
[train]
epochs = 3
lr = 0.01
[deploy]
samples = 16
[attack]
eps = [0.0, 0.2]
attacks = ["fgsm", "apgd", "square"]
readouts = ["counts"]
surrogates = ["trained"]
eot = 2
steps = 3
square_steps = 10
square_draws = 1
draws = 2
selection_draws = 2
doublings = 1
max_doublings = 1
samples = 16
targets = ["torch", "emulator"]
"""


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("randhet: error: ")
    return err[0]


@pytest.mark.lava
def test_run_trains_exports_and_deploys(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_TOML)
    out = tmp_path / "run"
    code = main(["run", "--config", str(cfg), "--set", "neuron.sigma=0.5", "--out", str(out),
                 "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "bit-exact fraction (deployed vs torch)   1.0000" in printed
    resolved = tomllib.loads((out / "config.toml").read_text())
    assert resolved["neuron"]["sigma"] == 0.5 and resolved["name"] == "tiny"
    for name in ("network.pt", "last.pt", "metrics.json", "log.csv", "training.png",
                 "network.net", "deploy.json", "deploy.png", "spec.json"):
        assert (out / name).is_file(), name
    state = torch.load(out / "network.pt", weights_only=True)
    assert "layers.1.synapse.weight" in state  # layers.0 is the flatten
    log = (out / "log.csv").read_text().strip().splitlines()
    assert len(log) == 1 + 3  # header and one row per epoch
    report = json.loads((out / "deploy.json").read_text())
    assert report["samples"] == 16 and report["bit_exact_fraction"] == 1.0
    assert "robust accuracy (ensemble" in printed and "flag budget_converged" in printed
    assert (out / "robustness.json").is_file()


def test_missing_config_file(capsys) -> None:
    assert main(["train", "--config", "no/such.toml"]) == 2
    assert "config file not found" in _error_line(capsys)


def test_unknown_config_key(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nepochz = 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown key 'train.epochz'" in _error_line(capsys)


def test_bad_override_value(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    assert main(["train", "--config", str(cfg), "--set", "neuron.sigma=-1"]) == 2
    assert "'neuron.sigma' must be in" in _error_line(capsys)
    assert main(["train", "--config", str(cfg), "--set", "train.epochs=many"]) == 2
    assert "'train.epochs' must be of type int" in _error_line(capsys)


def test_export_of_a_folder_that_is_not_a_run(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path)]) == 2
    assert "is not a trained run folder" in _error_line(capsys)


def test_deploy_of_a_missing_or_corrupt_network_file(tmp_path: Path, capsys) -> None:
    assert main(["deploy", str(tmp_path / "none.net")]) == 2
    assert "network file not found" in _error_line(capsys)
    bad = tmp_path / "bad.net"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    assert main(["deploy", str(bad)]) == 2
    assert "not an HDF5 file" in _error_line(capsys)


def test_deploy_of_an_hdf5_file_with_neither_randhet_metadata_nor_netx_layers(
    tmp_path: Path, capsys
) -> None:
    import h5py

    f = tmp_path / "plain.net"
    with h5py.File(f, "w") as h:
        h.create_group("layer")
    assert main(["deploy", str(f)]) == 2
    assert "no randhet metadata and no netx layer group" in _error_line(capsys)


def test_deploy_with_a_bad_profile_or_sample_count(tiny_run: Path, tmp_path: Path,
                                                    capsys) -> None:
    net = str(tiny_run / "network.net")
    assert main(["deploy", net, "--profile", "loihi9", "--out", str(tmp_path)]) == 2
    assert "unknown hardware profile 'loihi9'" in _error_line(capsys)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = 'x'\n")
    assert main(["deploy", net, "--profile", str(broken), "--out", str(tmp_path)]) == 2
    assert "broken.toml" in _error_line(capsys)
    assert main(["deploy", net, "--samples", "100000", "--out", str(tmp_path)]) == 2
    assert "the test split has" in _error_line(capsys)
    assert main(["deploy", net, "--backend", "gpu", "--out", str(tmp_path)]) == 2
    assert "unknown backend 'gpu'" in _error_line(capsys)


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "randhet", "deploy", str(tmp_path / "missing.net")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"randhet: error: network file not found: {tmp_path / 'missing.net'}"
    ]


def test_every_parser_command_has_a_handler() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS) and "import" in COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_for_every_command(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: randhet" in capsys.readouterr().out


def _copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("*.net", "*.nir", "tb"))
    return run


def test_a_truncated_checkpoint_is_one_line_at_export(tiny_run: Path, tmp_path: Path,
                                                       capsys) -> None:
    run = _copy_run(tiny_run, tmp_path)
    data = (run / "network.pt").read_bytes()
    (run / "network.pt").write_bytes(data[:3000])  # an interrupted copy
    assert main(["export", str(run)]) == 2
    line = _error_line(capsys)
    assert "network.pt: not a readable checkpoint of this run's network" in line
    (run / "network.pt").write_bytes(b"")
    assert main(["attack", str(run), "--samples", "4"]) == 2
    assert "not a readable checkpoint" in _error_line(capsys)


def test_a_network_file_that_disagrees_with_its_spec_is_one_line(tiny_run: Path, tmp_path: Path,
                                                                 capsys) -> None:
    bad = tmp_path / "threshold.net"
    shutil.copy(tiny_run / "network.net", bad)
    with h5py.File(bad, "a") as f:  # a threshold the spec does not have (was a ValueError)
        vth = f["layer/2/neuron/vThMant"]  # 0: the stock-netx refusal, 1: the flatten
        vth[...] = vth[()] + 64
    assert main(["deploy", str(bad), "--backend", "emulator", "--samples", "4"]) == 2
    assert "spiking layer 0 has threshold mantissa" in _error_line(capsys)


def test_transfer_and_attack_typos_are_refused_before_any_work(tiny_run: Path, tmp_path: Path,
                                                               capsys) -> None:
    out = tmp_path / "attack"
    assert main(["attack", str(tiny_run), "--attacks", "pgd,transfer", "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "--attacks: unknown attack 'transfer'" in line and "--transfer-from" in line
    assert not out.exists()
    config = tmp_path / "typo.toml"
    config.write_text(TINY_TOML.replace('attacks = ["fgsm", "apgd", "square"]',
                                        'attacks = ["fgsm", "pgdd"]'))
    run = tmp_path / "never"
    assert main(["run", "--config", str(config), "--out", str(run), "--quiet"]) == 2
    assert "'attack.attacks': unknown attack 'pgdd'" in _error_line(capsys)
    assert not run.exists()  # refused when the config was loaded, before training
    assert main(["attack", str(tiny_run), "--target", "emulator", "--out", str(out)]) == 2
    assert "--target must include torch" in _error_line(capsys)


@pytest.mark.parametrize(("command", "seeds", "message"), [
    ("compare", "0,x", "--seeds '0,x': expected comma-separated integers"),
    ("compare", "", "--seeds needs at least one training seed"),
    ("compare", "1,-2", "--seeds '1,-2': every training seed must be >= 0"),
    ("flex-compare", "-1", "--seeds '-1': every training seed must be >= 0"),
])
def test_bad_seeds_are_one_line_before_any_work(command: str, seeds: str, message: str,
                                                tmp_path: Path, capsys) -> None:
    config = "configs/digits-flex.toml" if command == "flex-compare" else "configs/digits.toml"
    assert main([command, "--config", config, "--seeds", seeds, "--out", str(tmp_path)]) == 2
    assert message in _error_line(capsys)
    assert not any(tmp_path.iterdir())


def test_results_go_where_out_says_else_to_the_stages_default() -> None:
    from randhet.io import default_folder, results_folder

    assert default_folder("digits") == Path("runs/digits")
    assert default_folder("digits", "compare") == Path("runs/digits-compare")
    assert results_folder(None, "runs/x") == results_folder("", "runs/x") == Path("runs/x")
    assert results_folder("elsewhere", "runs/x") == Path("elsewhere")
