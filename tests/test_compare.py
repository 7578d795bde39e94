"""``randhet compare``: a grid of config values, each RandHet cell beside its sigma = 0 control,
trained for real on tiny networks; resumable cell by cell."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from randhet.cli import main
from randhet.config import dump_toml, load_config, with_overrides
from randhet.errors import ConfigError, UserError
from randhet.experiments.compare import (
    cell_overrides,
    expand,
    full_grid,
    parse_grid_arg,
    parse_value,
    plan,
    training_key,
)


def test_grid_values_cells_controls_and_the_profile_mapping(make_tiny_config) -> None:
    assert [parse_value(t) for t in ("1", "0.5", "1e-3", "true", "False", "channel",
                                     "profile:4")] == [1, 0.5, 1e-3, True, False, "channel",
                                                       "profile:4"]
    assert parse_grid_arg("train.adv_eps=0, 0.1") == ("train.adv_eps", [0, 0.1])
    for bad in ("neuron.sigma", "=1,2", "neuron.sigma="):
        with pytest.raises(UserError):
            parse_grid_arg(bad)
    assert cell_overrides({"neuron.granularity": "profile:4", "neuron.sigma": 1.0}) == {
        "neuron.granularity": "profile", "neuron.profiles": 4, "neuron.sigma": 1.0}
    assert cell_overrides({"neuron.granularity": "channel"}) == {"neuron.granularity": "channel"}
    # at sigma = 0 granularity (and profile count) make no network: dropped from the training
    assert training_key({"neuron.granularity": "profile", "neuron.profiles": 4,
                         "neuron.sigma": 0.0, "train.adv_eps": 0.1}) == {
        "neuron.sigma": 0.0, "train.adv_eps": 0.1}
    assert expand([("a", [1, 2]), ("b", ["x", "y"])]) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]

    cfg = make_tiny_config("neuron.sigma=0.5")
    grid, note = full_grid(cfg, [("neuron.granularity", ["neuron", "channel"])])
    assert grid[-1] == ("neuron.sigma", [0.0, 0.5]) and "added neuron.sigma=0,0.5" in note
    assert full_grid(cfg, [("neuron.sigma", [0, 1])]) == ([("neuron.sigma", [0.0, 1.0])], None)
    for bad in ([("neuron.sigma", [1, 2])], [("neuron.sigma", [0, 0.0])],
                [("neuron.sigma", [0, "x"])], [("a", [1]), ("a", [2])], [("seed", [1, 2])]):
        with pytest.raises(UserError):
            full_grid(cfg, bad)

    cells, _, _ = plan(cfg, [("neuron.granularity", ["neuron", "channel"]),
                             ("train.adv_eps", [0, 0.1]), ("neuron.sigma", [0, 1])])
    assert len(cells) == 8
    for i, c in enumerate(cells):
        control = cells[c.control]
        assert control.sigma == 0 and {k: v for k, v in control.values.items()
                                       if k != "neuron.sigma"} == {
            k: v for k, v in c.values.items() if k != "neuron.sigma"}
        assert (c.control == i) == (c.sigma == 0)
    # one control per adv_eps, shared by both granularities; never across adv_eps
    controls = {c.training for c in cells if c.sigma == 0}
    assert len(controls) == 2 and len({c.training for c in cells}) == 6
    assert all(c.shared == (c.sigma == 0) for c in cells)
    assert cells[0].cfg["train"]["adv_eps"] == 0.0 and cells[2].cfg["train"]["adv_eps"] == 0.1
    assert cells[3].cfg["neuron"]["granularity"] == "neuron"
    assert cells[7].cfg["neuron"]["granularity"] == "channel"

    with pytest.raises(ConfigError, match="unknown key 'neuron.sigmaa'"):
        with_overrides(cfg, {"neuron.sigmaa": 1})
    assert with_overrides(cfg, {"neuron.sigma": 2})["neuron"]["sigma"] == 2.0
    assert cfg["neuron"]["sigma"] == 0.5  # a copy


def _config_file(tmp_path: Path, make_tiny_config, *extra: str) -> Path:
    cfg = make_tiny_config(
        "name=tiny", "train.epochs=1", "data.limit=300", "attack.eps=[0, 0.2, 0.4]",
        "attack.attacks=[\"fgsm\", \"pgd\", \"square\"]", "attack.square_steps=4",
        "attack.square_draws=2", "attack.eot=2", "attack.steps=2",
        "attack.restarts=1", "attack.draws=2", "attack.samples=24", "attack.batch_size=24",
        "attack.targets=[\"torch\", \"emulator\"]", "attack.readouts=[\"counts\"]",
        "attack.surrogates=[\"trained\"]", "attack.losses=[\"ce\"]", "attack.doublings=1",
        "attack.max_doublings=1", "attack.selection_draws=2", "deploy.samples=32", *extra)
    path = tmp_path / "tiny.toml"
    path.write_text(dump_toml(cfg))
    return path


def test_compare_grid_trains_each_cell_once_reads_it_against_its_control_and_resumes(
    tmp_path: Path, make_tiny_config, capsys
) -> None:
    config = _config_file(tmp_path, make_tiny_config)
    out = tmp_path / "cmp"
    args = ["compare", "--config", str(config), "--grid", "neuron.sigma=0,1",
            "--granularity", "neuron,profile:2", "--seeds", "0", "--out", str(out), "--quiet"]
    assert main(args) == 0
    result = json.loads((out / "compare.json").read_text())
    rows = result["rows"]
    assert result["grid"] == [["neuron.sigma", [0.0, 1.0]],
                              ["neuron.granularity", ["neuron", "profile:2"]]]
    assert [r["cell"] for r in rows] == [
        {"neuron.sigma": s, "neuron.granularity": g} for s in (0.0, 1.0)
        for g in ("neuron", "profile:2")]
    # the sigma = 0 control is one training, shared by both granularities
    assert result["trainings"] == 3 and len(result["computed"]) == 3
    assert rows[0]["runs"] == rows[1]["runs"] and rows[0]["shared_training"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "neuron.sigma-0.0", "neuron.sigma-1.0_neuron.granularity-neuron",
        "neuron.sigma-1.0_neuron.granularity-profile_neuron.profiles-2"]
    assert [r["control"] for r in rows] == [0, 1, 0, 1]
    for r in rows:
        control = rows[r["control"]]
        clean = r["clean_accuracy"]["mean"] - control["clean_accuracy"]["mean"]
        assert r["clean_accuracy_delta"]["mean"] == pytest.approx(clean)
        robust = [a["mean"] - b["mean"] for a, b in zip(r["robust_accuracy"],
                                                     control["robust_accuracy"], strict=True)]
        assert [d["mean"] for d in r["robust_accuracy_delta"]] == pytest.approx(robust)
        assert r["clean_accuracy"]["n"] == 1 and 0 <= r["clean_accuracy"]["mean"] <= 1
        assert [p["eps"] for p in r["robust_accuracy"]] == [0.0, 0.2, 0.4]
        assert 0 <= r["robust_auc"]["mean"] <= 1 and r["energy_joules_per_sample"]["mean"] > 0
        worst = r["worst_case_accuracy"][-1]["mean"]
        assert worst <= r["robust_accuracy"][-1]["mean"]
        seed = r["per_seed"][0]
        assert seed["overrides"] == {k: v for k, v in r["overrides"].items()
                                     if r["cell"]["neuron.sigma"] > 0
                                     or k not in ("neuron.granularity", "neuron.profiles")}
        assert isinstance(seed["all_flags_ok"], bool) and seed["flags_ok"]
        fit = r["fit"]
        # the deployment's own fit, on the config's deploy profile
        assert fit["profile"] == result["fit_profile"] == "loihi2"
        assert isinstance(fit["fits"], bool)
        assert fit["cores"]["mean"] >= 2 and fit["chips"]["mean"] >= 1
        writes = fit["redraw_writes_per_sample"]["mean"]
        assert writes == 0 if r["cell"]["neuron.sigma"] == 0 else writes > 0
        # each kind's strongest member alone, as the run's robustness.json has the members
        members = json.loads((Path(seed["run"]) / "robustness.json").read_text())["per_attack"]
        for kind, free in (("strongest_gradient", False), ("strongest_gradient_free", True)):
            curves = [m for m in members if m["name"].startswith("square@") == free]
            assert len(curves) == 2  # fgsm and pgd; Square on torch and on the emulator
            want = [min(c["points"][i]["mean"] for c in curves) for i in range(3)]
            assert seed[kind] == pytest.approx(want)
            assert [p["mean"] for p in r[kind]] == pytest.approx(want)
        control_free = control["per_seed"][0]["strongest_gradient_free"]
        assert [p["mean"] for p in r["strongest_gradient_free_delta"]] == pytest.approx(
            [a - b for a, b in zip(seed["strongest_gradient_free"], control_free, strict=True)])
    assert rows[0]["clean_accuracy_delta"]["mean"] == 0
    assert result["target"] == "emulator"
    # hand count: dense 24 and dense 10, one core each (loihi2's core size), 2 profiles each:
    # decayU and decayV of 4 profiles per sample; the per-neuron twin draws 24 + 10 pairs
    assert rows[3]["fit"]["redraw_writes_per_sample"]["mean"] == 2 * 2 * 2
    assert rows[2]["fit"]["redraw_writes_per_sample"]["mean"] == 2 * (24 + 10)

    table = (out / "compare.md").read_text()
    parts = table.split("\n\n")  # the table, the per-kind table's title, it, the notes
    body = [ln for ln in parts[0].splitlines() if ln.startswith("| ")]
    assert len(body) == 4  # header and one row per network: the shared control shown once
    kind_rows = [ln for ln in parts[2].splitlines() if ln.startswith("| ")]
    assert len(kind_rows) == 4 and "gradient-free alone @ 0.4 (Δ)" in kind_rows[0]
    assert "| 0† | any |" in body[1]
    assert "Δ clean" in body[0] and "robust @ 0.2 (Δ)" in body[0] and "robust AUC" in body[0]
    assert "control" in body[1] and "loihi2 cores / chips" in body[0]
    assert "emulator target" in table and "trained once and shared" in table
    assert (out / "compare.png").stat().st_size > 0

    # the same command again: every (cell, seed) reused, nothing retrained
    cells = sorted(out.glob("*/seed0/cell.json"))
    stamps = [p.stat().st_mtime_ns for p in cells]
    capsys.readouterr()
    assert main(args) == 0
    again = json.loads((out / "compare.json").read_text())
    assert again["computed"] == [] and [p.stat().st_mtime_ns for p in cells] == stamps
    assert again["rows"] == rows

    # a cell.json from before the per-kind columns: filled from its robustness.json, rewritten
    old = json.loads(cells[0].read_text())
    want = old.pop("strongest_gradient"), old.pop("strongest_gradient_free")
    cells[0].write_text(json.dumps(old))
    assert main(args) == 0
    assert json.loads((out / "compare.json").read_text())["rows"] == rows
    new = json.loads(cells[0].read_text())
    assert (new["strongest_gradient"], new["strongest_gradient_free"]) == want
    # ... but not from a robustness.json measured with other settings: refused, one line
    cells[0].write_text(json.dumps(old))
    rob = cells[0].parent / "robustness.json"
    saved = json.loads(rob.read_text())
    rob.write_text(json.dumps({**saved, "config": {**saved["config"], "steps": 99}}))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "robustness.json" in err[0] and "other attack settings" in err[0]
    rob.write_text(json.dumps(saved))

    # the same folder with another config: refused, one line
    other = _config_file(tmp_path, make_tiny_config, "train.lr=0.02")
    capsys.readouterr()
    assert main([*args[:2], str(other), *args[3:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.lr" in err[0] and "use another --out" in err[0]


def test_compare_continues_a_training_interrupted_inside_a_cell(tmp_path: Path,
                                                                 make_tiny_config) -> None:
    """A cell whose training stopped after its first epoch (checkpoint.pt, no cell.json):
    compare resumes it from the checkpoint instead of starting over."""
    from randhet.train.trainer import train  # the stage, as compare runs it

    config = _config_file(tmp_path, make_tiny_config, "train.epochs=2")
    out = tmp_path / "cmp"
    (cell,), _, _ = plan(load_config(config), [("neuron.sigma", [0])])
    run = cell.run_dir(out, 0)
    first = cell.seed_config(0)
    train({**first, "train": {**first["train"], "epochs": 1}}, run, progress=False)
    epoch1 = (run / "log.jsonl").read_text()
    assert main(["compare", "--config", str(config), "--sigmas", "0", "--seeds", "0",
                 "--out", str(out), "--quiet"]) == 0
    saved = json.loads((run / "cell.json").read_text())
    assert saved["epochs"] == 2
    log = (run / "log.jsonl").read_text()
    assert log.startswith(epoch1) and len(log.splitlines()) == 2


@pytest.mark.parametrize("grid, says", [
    (["--grid", "neuron.sigmaa=0,1"], "unknown key 'neuron.sigmaa'"),
    (["--granularity", "neuron,atom"], "'neuron.granularity' must be one of"),
    (["--sigmas", "0.5,1"], "need 0"),
    (["--sigmas", "0,-1"], "'neuron.sigma' must be in"),
    (["--grid", "neuron.sigma=0,1", "--sigmas", "0,2"], "given twice"),
    (["--grid", "train.epochs"], "expected section.key=value1,value2"),
])
def test_compare_refuses_a_bad_grid_in_one_line(tmp_path: Path, make_tiny_config, capsys,
                                                grid: list[str], says: str) -> None:
    config = _config_file(tmp_path, make_tiny_config)
    out = tmp_path / "cmp"
    assert main(["compare", "--config", str(config), *grid, "--seeds", "0",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("randhet: error: ") and says in err[0], err
    assert not out.exists()  # refused before anything was trained


@pytest.mark.slow
def test_compare_on_digits_over_granularities_and_three_seeds(tmp_path: Path) -> None:
    """The comparison on the demo's digits network, 12 trainings (RANDHET_SLOW=1 runs it; about
    4 min on 2 cores)."""
    out = tmp_path / "digits"
    config = Path(__file__).resolve().parents[1] / "configs" / "digits.toml"
    protocol = ["attack.targets=[\"torch\", \"emulator\"]", "attack.eps=[0, 0.1, 0.2, 0.3]",
                "attack.attacks=[\"fgsm\", \"pgd\"]", "attack.eot=4", "attack.steps=5",
                "attack.restarts=1"]
    assert main(["compare", "--config", str(config), "--set", "train.epochs=10",
                 *(a for s in protocol for a in ("--set", s)),
                 "--granularity", "neuron,profile:1,profile:4", "--seeds", "0,1,2",
                 "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["grid_note"] and len(result["rows"]) == 6 and result["trainings"] == 4
    for row in result["rows"]:
        assert row["clean_accuracy"]["n"] == 3
        assert row["clean_accuracy"]["mean"] > 0.8
    fits = {row["cell"]["neuron.granularity"]: row["fit"]["fits"] for row in result["rows"]
            if row["cell"]["neuron.sigma"] > 0}
    assert fits == {"neuron": [False] * 3, "profile:1": [True] * 3, "profile:4": [True] * 3}
    assert os.path.getsize(out / "compare.png") > 0
