"""``randhet attack RUN_DIR``: the robustness protocol on a trained run, as trained and deployed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from randhet import distributed as dist
from randhet import kernel
from randhet.attack.cache import UnitCache, digest
from randhet.attack.protocol import run_protocol
from randhet.attack.report import summary_lines
from randhet.attack.results import ROBUSTNESS_FILE, RobustnessResult
from randhet.attack.settings import ProtocolConfig
from randhet.errors import UserError
from randhet.export import export_run
from randhet.io import library_versions, results_folder, write_json
from randhet.network import read_network
from randhet.plots import plot_robustness
from randhet.runs import open_run

SIGMA0 = "sigma0"  # attack --randomness-off's default folder inside the run
PARTIAL = "robustness.partial"  # finished units of an unfinished run (removed when complete)
# bumped when a unit's seeding or content changes, so an older run's units are not reused
PROTOCOL_VERSION = 4  # 2: per-unit attack seeds; 3: ties and silent outputs are wrong; 4: the
# ensemble with its budget ladder


def _fingerprint(run: Path, cfg: ProtocolConfig, run_cfg: dict[str, Any],
                 transfer_from: str | Path | None, randomness_off: bool) -> dict[str, Any]:
    """What the units' results depend on: settings, data and the networks' bytes."""
    files = [run / "network.pt", run / "network.net"]
    if transfer_from is not None:
        files.append(Path(transfer_from) / "network.pt")
    return {
        "protocol_version": PROTOCOL_VERSION,
        "protocol": cfg.to_dict(),
        "randomness_off": randomness_off,
        "data": run_cfg["data"],
        "networks": {str(f): digest(f.read_bytes()) for f in files if f.is_file()},
    }


@dataclass(frozen=True)
class AttackSpeed:
    """Throughput of one protocol run: attacked samples (samples x members x attacked eps at
    the first budget) per second of wall clock, the whole protocol's time included."""

    seconds: float
    samples: int
    attack_runs: int
    samples_per_s: float | None
    fused_kernel: bool
    threads: int
    resumed_units: int

    def line(self) -> str:
        """One line for the summary; a resumed run's time is not a speed."""
        if self.resumed_units or self.samples_per_s is None:
            return f"time: {self.seconds:.1f} s (resumed: not a measure of speed)"
        path = "fused kernel" if self.fused_kernel else "per-step loop"
        return (f"time: {self.seconds:.1f} s for {self.samples} samples ({path}, "
                f"{self.threads} thread(s))")


def attack_folder(run_dir: str | Path, out_dir: str | Path | None,
                  randomness_off: bool = False) -> Path:
    """Where ``attack_run`` writes: ``out_dir``, else the run folder, or its ``sigma0/``
    subfolder for the sigma = 0 twin (so the twin never overwrites the run's own report)."""
    return results_folder(out_dir, Path(run_dir) / SIGMA0 if randomness_off else run_dir)


def attack_run(
    run_dir: str | Path, cfg: ProtocolConfig, out_dir: str | Path | None = None,
    progress: bool = True, transfer_from: str | Path | None = None,
    randomness_off: bool = False,
) -> RobustnessResult:
    """Attack the run's best checkpoint on its test split; writes robustness.json and .png.

    Finished units of work are kept in ``OUT/robustness.partial/`` until the run completes, so
    the same command after an interruption resumes and gives the same result.

    ``transfer_from``: another run folder whose model crafts the transfer attack (default: the
    sigma = 0 twin of this run's weights). Under torchrun every rank attacks its chunks of the
    samples and rank 0 writes the gathered result (see :func:`run_protocol`).

    ``randomness_off``: attack the sigma = 0 twin of the run's weights (mean decays, no draws),
    deployed from its own ``network.net`` in the output folder (default ``RUN_DIR/sigma0/``):
    the whole protocol on RandHet-trained weights deployed deterministically."""
    cfg.check()
    opened = open_run(run_dir)
    run, run_cfg = opened.path, opened.config
    model = opened.model()
    trained_sigma = model.spec.neuron.sigma
    if randomness_off:
        model = model.randomness_off_twin()
    data = opened.data()
    n = min(cfg.samples, len(data.x_test))
    x = torch.as_tensor(data.x_test[:n])
    y = torch.as_tensor(data.y_test[:n])
    out = attack_folder(run, out_dir, randomness_off)
    deployed = None
    if {"emulator", "lava"} & set(cfg.targets):
        net_path = (out if randomness_off else run) / "network.net"
        if dist.world().main and (randomness_off or not net_path.is_file()):
            out.mkdir(parents=True, exist_ok=True)
            export_run(run, net_path if randomness_off else None, randomness_off=randomness_off)
        dist.barrier()
        deployed = read_network(net_path)
    source = None
    if transfer_from is not None:
        other = Path(transfer_from)
        try:
            source = open_run(other).model()
        except UserError as exc:
            raise UserError(f"--transfer-from: {exc}") from None
        if source.spec.input_shape != model.spec.input_shape:
            raise UserError(f"--transfer-from {other}: its inputs {source.spec.input_shape} "
                            f"differ from {model.spec.input_shape}")
    cache = UnitCache(out / PARTIAL, _fingerprint(run, cfg, run_cfg, transfer_from,
                                                  randomness_off))
    result = run_protocol(model, x, y, cfg, deployed, progress, source, cache)
    runs = len(result.members) * sum(e > 0 for e in cfg.eps)
    speed = AttackSpeed(result.seconds, n, runs,
                        n * runs / result.seconds if result.seconds > 0 else None,
                        kernel.available(), torch.get_num_threads(), cache.reused)
    if cache.reused:
        print(f"resumed: {cache.reused} finished unit(s) of an interrupted run were reused "
              f"from {out / PARTIAL}")
    result.run_info = {
        "run": str(run), "sigma": model.spec.neuron.sigma, "trained_sigma": trained_sigma,
        "randomness_off": randomness_off,
        "seeds": {"training": run_cfg["seed"], "data_split": run_cfg["data"]["split_seed"],
                  "attack_and_scoring": cfg.seed},
        "transfer_source": "sigma = 0 twin" if transfer_from is None else str(transfer_from),
        "speed": asdict(speed), "versions": library_versions(),
    }
    twin = (f"network: the sigma = 0 twin of {run} (trained at sigma {trained_sigma:g}): "
            "mean decays, no draws",) if randomness_off else ()
    result.summary = (*twin, *summary_lines(result), speed.line())
    if dist.world().main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / ROBUSTNESS_FILE, result.to_json())
        plot_robustness(result, out / "robustness.png")
    cache.remove()  # complete: the per-unit results are in robustness.json
    return result
