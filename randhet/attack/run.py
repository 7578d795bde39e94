"""``randhet attack RUN_DIR``: the robustness protocol on a trained run, as trained and deployed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import torch

from randhet.attack.protocol import ProtocolConfig, run_protocol, summary_lines
from randhet.errors import UserError
from randhet.io import write_json


def attack_run(
    run_dir: str | Path, cfg: ProtocolConfig, out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Attack the run's best checkpoint on its test split; writes robustness.json and .png."""
    from randhet.data import load_dataset
    from randhet.train.trainer import load_trained

    run = Path(run_dir)
    for name in ("spec.json", "network.pt", "config.toml"):
        if not (run / name).is_file():
            raise UserError(f"{run} is not a trained run folder ({name} is missing)")
    unknown = set(cfg.targets) - {"float", "torch", "emulator", "lava"}
    if unknown:
        raise UserError(f"unknown target(s) {sorted(unknown)}: use float, torch, emulator, lava")
    from randhet.attack.registry import ATTACKS

    bad = [a for a in cfg.attacks if a not in ATTACKS]
    if bad:
        raise UserError(f"unknown attack(s) {bad}; available: {', '.join(sorted(ATTACKS))}")
    run_cfg = tomllib.loads((run / "config.toml").read_text())
    model = load_trained(run)
    data = load_dataset(run_cfg["data"], timesteps=model.spec.encoding.timesteps)
    n = min(cfg.samples, len(data.x_test))
    x = torch.as_tensor(data.x_test[:n])
    y = torch.as_tensor(data.y_test[:n])
    deployed = None
    if {"emulator", "lava"} & set(cfg.targets):
        from randhet.export import export_run, read_network

        net_path = run / "network.net"
        if not net_path.is_file():
            export_run(run)
        deployed = read_network(net_path)
    result = run_protocol(model, x, y, cfg, data.num_classes, deployed, progress)
    result["run"] = str(run)
    result["sigma"] = model.spec.neuron.sigma
    out = Path(out_dir) if out_dir else run
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "robustness.json", result)
    from randhet.report.robustness_plot import plot_robustness

    plot_robustness(result, out / "robustness.png")
    result["summary"] = summary_lines(result)
    return result
