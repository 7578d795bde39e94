"""randhet from Python: the stages the command line runs, as functions (``import randhet``).

Each function takes what the matching command takes and returns its result, typed (the
dataclasses whose ``to_dict()`` the JSON files hold)::

    import randhet

    cfg = randhet.load_config("configs/digits.toml", ["train.epochs=5"])
    randhet.train_run(cfg, "runs/py")                      # config.toml, network.pt, ...
    run = randhet.load_run("runs/py")                      # config, spec, model(), data()
    net = randhet.export_run("runs/py")                    # runs/py/network.net
    report = randhet.deploy_network(net, backend="emulator")  # DeployReport: deploy.json
    print(report.accuracy, report.cost.activity.energy.joules_per_sample)
    prof = randhet.profile_network(net, profile="loihi1")  # ProfileReport: profile.json
    rob = randhet.attack_run("runs/py", eps=[0, 0.1], attacks=["apgd"], samples=50)  # typed

(The names end in ``_run`` / ``_network`` because ``randhet.train``, ``.export``, ``.deploy``
and ``.attack`` are the stages' packages.)

A mistake in what is asked (bad path, config key, file) raises :class:`randhet.UserError`
with a one-line message, as the command line prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from randhet.attack import run as _attack
from randhet.attack.results import RobustnessResult
from randhet.attack.settings import ProtocolConfig
from randhet.config import load_config
from randhet.deploy.pipeline import deploy, run_profile
from randhet.deploy.reports import DeployReport, ProfileReport
from randhet.errors import UserError
from randhet.export import netx
from randhet.export.nir_export import export_nir
from randhet.runs import Run, open_run
from randhet.train.state import TrainMetrics
from randhet.train.trainer import train

__all__ = ["Run", "UserError", "attack_run", "deploy_network", "export_run", "load_config",
           "load_run", "profile_network", "train_run"]


def load_run(run_dir: str | Path) -> Run:
    """A trained run folder: ``.config``, ``.spec``, ``.model()`` (best checkpoint, CPU) and
    ``.data()`` (its splits)."""
    return open_run(run_dir)


def train_run(config: dict[str, Any] | str | Path, out_dir: str | Path, *,
              progress: bool = True, resume: bool = False) -> TrainMetrics:
    """Train the network a config (a loaded dict, or a TOML path) describes into ``out_dir``;
    returns its metrics (``metrics.json``'s fields)."""
    cfg = config if isinstance(config, dict) else load_config(config)
    return train(cfg, out_dir, progress=progress, resume=resume)


def export_run(run_dir: str | Path, out_path: str | Path | None = None, *,
               format: str = "netx") -> Path:
    """``network.net`` (``format="netx"``) or ``network.nir`` (``"nir"``) of a trained run."""
    if format == "netx":
        return netx.export_run(run_dir, out_path)
    if format == "nir":
        return export_nir(run_dir, out_path)
    raise UserError(f"unknown export format {format!r}: use netx or nir")


def deploy_network(network: str | Path, **options: Any) -> DeployReport:
    """``randhet deploy``: :func:`randhet.deploy.pipeline.deploy` (``backend``, ``samples``,
    ``profile``, ``seed``, ``out_dir``, ``progress``)."""
    return deploy(network, **options)


def profile_network(network: str | Path, **options: Any) -> ProfileReport:
    """``randhet profile``: :func:`randhet.deploy.pipeline.run_profile` (``samples``,
    ``profile``, ``seed``, ``out_dir``, ``progress``)."""
    return run_profile(network, **options)


def attack_run(run_dir: str | Path, *, out_dir: str | Path | None = None, progress: bool = True,
               transfer_from: str | Path | None = None, randomness_off: bool = False,
               **settings: Any) -> RobustnessResult:
    """``randhet attack``: the robustness protocol with the ``[attack]`` settings given as
    keywords (``eps``, ``attacks``, ``eot``, ``steps``, ``restarts``, ``draws``, ``samples``,
    ``batch_size``, ``targets``, ``losses``, ``readouts``, ``surrogates``, ``seed``, ...: the
    keys of the ``[attack]`` table; the rest take the defaults); returns the typed result
    (``.to_json()`` is ``robustness.json``'s content). ``randomness_off``: attack the run's
    sigma = 0 twin instead (results in ``RUN/sigma0/`` unless ``out_dir``)."""
    cfg = ProtocolConfig.from_table(settings, name=lambda key: f"attack setting '{key}'")
    return _attack.attack_run(run_dir, cfg, out_dir, progress=progress,
                              transfer_from=transfer_from, randomness_off=randomness_off)
