"""Train with RandHet, deploy at sigma = 0? The T = 32 twin check with the ensemble.

Run by hand (not a test; about 50 minutes on 2 cores)::

    .venv/bin/python benchmarks/twin_check.py                 # seeds 0, 1, 2 into runs/t32-twin
    .venv/bin/python benchmarks/twin_check.py --seeds 0 --timesteps 16

For every seed, three networks of ``configs/digits.toml`` at ``--timesteps`` steps:

- ``control``: trained and deployed with sigma = 0;
- ``randhet``: trained and deployed with per-neuron RandHet (sigma 1, a fresh draw per sample);
- ``twin``: the same weights as ``randhet``, deployed with the mean decays and no draws
  (``randhet attack RUN --randomness-off``, ``randhet export RUN --randomness-off``).

Each is attacked with the config's ``[attack]`` table scored on torch and the emulator (as
``randhet compare`` does; each kind of attack alone too: the strongest gradient member and the
strongest gradient-free one, torch scoring) and deployed on the emulator over the whole test
split (clean accuracy, sparsity, energy, fit on ``deploy.profile``). Finished stages in the
run folders are reused (a training that is done, a ``robustness.json`` with these settings, a
``deploy.json``), so an interrupted run resumes. Writes ``--out-json`` and a Markdown table
beside it: per network and seed the emulator's ensemble accuracy with its 95 % interval, the
budget ladder's verdict and the flags that failed; mean ± std over seeds; the paired
differences against the control and between the twin and RandHet.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import harness

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.attack.results import ROBUSTNESS_FILE, Curve, strongest_alone
from randhet.attack.run import attack_folder, attack_run
from randhet.attack.settings import ProtocolConfig
from randhet.config import load_config, protocol_config
from randhet.deploy.pipeline import deploy
from randhet.experiments.results import SeedStat
from randhet.experiments.saved import train_resuming
from randhet.export import export_run
from randhet.io import write_text

KINDS = ("control", "randhet", "twin")
TARGET = "emulator"


@dataclass(frozen=True)
class Measured:
    """One network of one seed: the deployment and the ensemble on the emulator."""

    kind: str
    seed: int
    run: str
    clean_accuracy: float  # whole test split, emulator, deploy.seed's draws
    activation_sparsity: float
    energy_joules_per_sample: float
    cores: int | None
    fits: bool
    eps: tuple[float, ...]
    robust_accuracy: tuple[float, ...]  # the ensemble, mean over scoring draws
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    worst_case: tuple[float, ...]
    robust_auc: float
    not_converged_at: tuple[float, ...]
    failed_flags: tuple[str, ...]
    strongest_gradient: tuple[float | None, ...]  # one member of the kind alone, torch
    strongest_gradient_free: tuple[float | None, ...]
    attack_seconds: float


def _done(path: Path, config: ProtocolConfig) -> bool:
    """A finished robustness.json measured with these protocol settings."""
    if not path.is_file():
        return False
    return config.same_as_saved(json.loads(path.read_text())["config"])


def measure(kind: str, seed: int, out: Path, timesteps: int, progress: bool) -> Measured:
    """Train (or reuse), attack and deploy one network of the study."""
    sigma = "0.0" if kind == "control" else "1.0"
    run = out / (f"control-seed{seed}" if kind == "control" else f"seed{seed}")
    cfg = load_config("configs/digits.toml", [
        f"encoding.timesteps={timesteps}", f"neuron.sigma={sigma}", "neuron.granularity=neuron",
        f"seed={seed}", f"name=digits-t{timesteps}-{'control-' if kind == 'control' else ''}"
        f"seed{seed}"])
    protocol = replace(protocol_config(cfg), targets=("torch", "emulator"))
    train_resuming(cfg, run, progress)
    twin = kind == "twin"
    folder = attack_folder(run, None, randomness_off=twin)
    if not _done(folder / ROBUSTNESS_FILE, protocol):
        if not twin:
            export_run(run)
        attack_run(run, protocol, progress=progress, randomness_off=twin)
    net = folder / "network.net"
    if not (folder / "deploy.json").is_file():
        deploy(net, backend="emulator", samples=0, profile=cfg["deploy"]["profile"],
               seed=cfg["deploy"]["seed"], out_dir=folder, progress=progress)
    rob = json.loads((folder / ROBUSTNESS_FILE).read_text())  # _done: these settings
    curves = tuple(Curve.from_dict(c) for c in rob["per_attack"])
    dep = json.loads((folder / "deploy.json").read_text())
    heads = [h for h in rob["headline"] if h["target"] == TARGET]
    ensemble = next(c for c in rob["ensemble"] if c["target"] == TARGET)
    return Measured(
        kind=kind, seed=seed, run=str(folder), clean_accuracy=dep["accuracy"],
        activation_sparsity=dep["activation_sparsity"],
        energy_joules_per_sample=dep["energy"]["joules_per_sample"],
        cores=dep["resources"]["total_cores"], fits=dep["resources"]["fits"],
        eps=tuple(h["eps"] for h in heads), robust_accuracy=tuple(h["accuracy"] for h in heads),
        ci_low=tuple(h["ci_low"] for h in heads), ci_high=tuple(h["ci_high"] for h in heads),
        worst_case=tuple(h["worst_case"] for h in heads), robust_auc=ensemble["auc"],
        not_converged_at=tuple(c["eps"] for c in rob["convergence"] if not c["converged"]),
        failed_flags=tuple(f["name"] for f in rob["flags"] if not f["ok"]),
        strongest_gradient=strongest_alone(curves, protocol.eps, True),
        strongest_gradient_free=strongest_alone(curves, protocol.eps, False),
        attack_seconds=rob["seconds"])


def _stat(values: list[float]) -> dict[str, float]:
    """Mean, population std and count over seeds, as compare.json writes them."""
    return SeedStat.of(list(values)).to_dict()


def summary(rows: list[Measured]) -> dict:
    """Mean ± std over seeds per network, and the paired differences by seed."""
    by = {(r.kind, r.seed): r for r in rows}
    seeds = sorted({r.seed for r in rows})
    eps = rows[0].eps

    def numbers(r: Measured) -> dict[str, float]:
        out = {"clean_accuracy": r.clean_accuracy, "robust_auc": r.robust_auc,
               "activation_sparsity": r.activation_sparsity,
               "energy_joules_per_sample": r.energy_joules_per_sample}
        out.update({f"robust@{e:g}": a for e, a in zip(eps, r.robust_accuracy, strict=True)})
        out.update({f"gradient_free@{e:g}": a for e, a in
                    zip(eps, r.strongest_gradient_free, strict=True) if a is not None})
        out.update({f"gradient@{e:g}": a for e, a in
                    zip(eps, r.strongest_gradient, strict=True) if a is not None})
        return out

    per = {k: {name: _stat([numbers(by[k, s])[name] for s in seeds])
               for name in numbers(rows[0])} for k in KINDS}
    pairs = {"randhet-control": ("randhet", "control"), "twin-control": ("twin", "control"),
             "twin-randhet": ("twin", "randhet")}
    paired = {label: {name: _stat([numbers(by[a, s])[name] - numbers(by[b, s])[name]
                                   for s in seeds]) for name in numbers(rows[0])}
              for label, (a, b) in pairs.items()}
    return {"seeds": seeds, "eps": list(eps), "per_network": per, "paired": paired}


def table(rows: list[Measured], summ: dict) -> str:
    """The Markdown table: mean ± std over seeds, (paired Δ against the control)."""
    eps = [e for e in summ["eps"] if e > 0]
    cols = ["clean_accuracy", *[f"robust@{e:g}" for e in eps], "robust_auc",
            *[f"gradient@{e:g}" for e in eps], *[f"gradient_free@{e:g}" for e in eps]]
    head = ["network", "clean acc (Δ)", *[f"ensemble @ {e:g} (Δ)" for e in eps],
            "AUC (Δ)", *[f"gradient alone @ {e:g} (Δ)" for e in eps],
            *[f"gradient-free alone @ {e:g} (Δ)" for e in eps], "sparsity",
            "energy / sample (µJ)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for kind in KINDS:
        per = summ["per_network"][kind]
        cells = []
        for c in cols:
            s = f"{per[c]['mean']:.3f} ± {per[c]['std']:.3f}"
            if kind != "control":
                d = summ["paired"][f"{kind}-control"][c]
                s += f" ({d['mean']:+.3f} ± {d['std']:.3f})"
            cells.append(s)
        sp, en = per["activation_sparsity"], per["energy_joules_per_sample"]
        cells += [f"{sp['mean']:.3f}", f"{en['mean'] * 1e6:.3f} ± {en['std'] * 1e6:.3f}"]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (emulator, 95 % interval over the 100 attacked samples):", ""]
    for r in rows:
        acc = ", ".join(f"{e:g}: {a:.3f} [{lo:.2f}, {hi:.2f}]" for e, a, lo, hi in
                        zip(r.eps, r.robust_accuracy, r.ci_low, r.ci_high, strict=True) if e > 0)
        lines.append(f"- {r.kind} seed {r.seed}: clean {r.clean_accuracy:.3f}; {acc}; "
                     f"not converged at {list(r.not_converged_at) or 'none'}; failed flags: "
                     f"{', '.join(r.failed_flags) or 'none'}")
    d = summ["paired"]["twin-randhet"]
    lines += ["", "Twin minus RandHet (same weights, paired by seed): " + ", ".join(
        f"{c} {d[c]['mean']:+.3f} ± {d[c]['std']:.3f}" for c in cols), ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--timesteps", type=int, default=32)
    p.add_argument("--out", default="runs/t32-twin", help="run folders")
    p.add_argument("--out-json", default=str(harness.RESULTS / "compare" /
                                             "digits-t32-twin.json"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    rows = [measure(kind, s, out, args.timesteps, not args.quiet)
            for s in seeds for kind in KINDS]
    summ = summary(rows)
    path = harness.write_json(args.out_json, {
        "machine": harness.machine(), "timesteps": args.timesteps,
        "note": "machine: where this tabulation ran; the attacks' own times are per network "
                "(attack_seconds)",
        "rows": [asdict(r) for r in rows], "summary": summ})
    text = table(rows, summ)
    write_text(path.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
