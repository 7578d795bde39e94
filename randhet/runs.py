"""A trained run folder, opened in one place: its config, network description, model and data.

``randhet train`` writes ``config.toml`` (resolved), ``spec.json`` and ``network.pt`` (the best
checkpoint's state dict); export, attack, analysis and the experiments read them through
:func:`open_run`. Anything missing, corrupt or truncated is a :class:`~randhet.errors.UserError`
with one line naming the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from randhet.data import Splits, load_dataset
from randhet.errors import UserError
from randhet.models import Network, build_network
from randhet.spec import NetworkSpec

RUN_FILES = ("spec.json", "network.pt", "config.toml")


@dataclass(frozen=True)
class Run:
    """An opened run folder: ``config`` (the resolved TOML as a dict) and ``spec``."""

    path: Path
    config: dict[str, Any]
    spec: NetworkSpec

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.resolve().name)

    @property
    def mode(self) -> str:
        """Training mode (snn | hybrid | ann); runs from before ``model.mode`` are snn."""
        return str(self.config.get("model", {}).get("mode", "snn"))

    def model(self) -> Network:
        """The best checkpoint (``network.pt``) as a model on the CPU."""
        model = build_network(self.spec, self.mode)
        path = self.path / "network.pt"
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            model.load_state_dict(state)
        except Exception as exc:  # truncated, corrupt, or the weights of another network
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{path}: not a readable checkpoint of this run's network "
                            f"({first})") from None
        return model

    def data(self) -> Splits:
        """The run's data splits (its ``[data]`` table, at its network's time steps)."""
        return load_dataset(self.config["data"], timesteps=self.spec.encoding.timesteps)


def open_run(run_dir: str | Path) -> Run:
    """Open a folder written by ``randhet train``; UserError if it is not one."""
    run = Path(run_dir)
    for name in RUN_FILES:
        if not (run / name).is_file():
            raise UserError(f"{run} is not a trained run folder ({name} is missing)")
    try:
        config = tomllib.loads((run / "config.toml").read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{run / 'config.toml'}: not valid TOML ({exc})") from None
    try:
        spec = NetworkSpec.from_json((run / "spec.json").read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{run / 'spec.json'}: not a randhet network description ({exc})"
                        ) from None
    return Run(run, config, spec)
