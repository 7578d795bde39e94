"""The Python API (``import randhet``): the README's example, on a tiny network."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import randhet

TINY = ["train.epochs=2", "train.device=cpu", "data.limit=300", 'model.layers=["dense:16"]',
        "encoding.timesteps=6"]


def test_import_is_light_and_has_one_version() -> None:
    code = "import sys, randhet; print('torch' in sys.modules, 'randhet.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]  # the stages load on first use
    assert randhet.__version__ == version("randhet")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = randhet.nope


def test_no_api_name_is_shadowed_by_a_subpackage() -> None:
    """A subpackage, once imported, is an attribute of the package and would hide an API
    function of the same name (randhet.train the package vs a train function)."""
    import randhet.attack.run  # noqa: F401  (every stage imported: the names must survive)
    import randhet.deploy.pipeline  # noqa: F401
    import randhet.export.netx  # noqa: F401
    import randhet.train.trainer  # noqa: F401

    for name in randhet.__all__[1:]:
        assert callable(getattr(randhet, name)), name


def test_the_readme_example_runs(tmp_path: Path) -> None:
    cfg = randhet.load_config(Path(__file__).parents[1] / "configs" / "digits.toml", TINY)
    metrics = randhet.train_run(cfg, tmp_path / "py", progress=False)
    assert metrics.epochs == 2
    run = randhet.load_run(tmp_path / "py")
    assert run.spec.layers[-1].out_features == 10 and run.model().mode == "snn"
    net = randhet.export_run(tmp_path / "py")
    assert net == tmp_path / "py" / "network.net"
    report = randhet.deploy_network(net, backend="emulator", samples=20, progress=False)
    assert report.bit_exact_fraction == 1.0 and report.samples == 20
    assert report.cost.activity.energy.joules_per_sample > 0
    prof = randhet.profile_network(net, samples=10, profile="loihi1", progress=False)
    assert prof.cost.fit.profile == "loihi1" and prof.to_dict()["resources"]["profile"] == "loihi1"
    rob = randhet.attack_run(tmp_path / "py", eps=[0, 0.2], attacks=["fgsm"], samples=10, eot=1,
                         draws=1, targets=["torch"], progress=False)
    assert [p.eps for p in rob.curve("ensemble").points] == [0.0, 0.2]
    assert rob.members == ("fgsm/ce/counts/trained",)
    assert randhet.export_run(tmp_path / "py", format="nir").suffix == ".nir"


def test_api_mistakes_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(randhet.UserError, match="not a trained run folder"):
        randhet.load_run(tmp_path)
    with pytest.raises(randhet.UserError, match="unknown attack setting"):
        randhet.attack_run(tmp_path, epsilon=[0.1])
    with pytest.raises(randhet.UserError, match="unknown export format"):
        randhet.export_run(tmp_path, format="onnx")
