"""``randhet compare``: the same protocol on identically trained networks with and without
RandHet (sigma = 0 vs sigma > 0), over several training seeds, in one table and one plot.

For every (sigma, seed): train, export, deploy on the emulator (clean accuracy, sparsity, energy
per sample), then the robustness protocol. The table reports mean and std over seeds, whichever
way the numbers fall.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from randhet.attack.run import attack_run
from randhet.attack.settings import ProtocolConfig
from randhet.deploy.pipeline import deploy
from randhet.export import export_run
from randhet.io import write_json, write_text
from randhet.plots import plot_compare
from randhet.train.trainer import train


def seed_stats(values: list[float]) -> dict[str, float]:
    """Mean, population std and count of one number over training seeds."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": len(a)}


def compare(
    base_cfg: dict[str, Any],
    sigmas: list[float],
    seeds: list[int],
    protocol: ProtocolConfig,
    out_dir: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, deploy and attack every (sigma, seed); write compare.json/.md/.png."""
    out = Path(out_dir)
    rows: dict[float, list[dict[str, Any]]] = {s: [] for s in sigmas}
    for sigma in sigmas:
        for seed in seeds:
            cfg = copy.deepcopy(base_cfg)
            cfg["seed"] = seed
            cfg["neuron"]["sigma"] = sigma
            cfg["name"] = f"{base_cfg['name']}-sigma{sigma:g}-seed{seed}"
            run = out / cfg["name"]
            metrics = train(cfg, run, progress=progress)
            export_run(run)
            dep = deploy(run / "network.net", backend="emulator", samples=0,
                         profile=cfg["deploy"]["profile"], seed=cfg["deploy"]["seed"],
                         progress=False)
            rob = attack_run(run, protocol, progress=progress)
            rows[sigma].append({"seed": seed, "val_accuracy": metrics["best_val_accuracy"],
                                "deploy": dep, "robustness": rob})
    table = []
    for sigma in sigmas:
        entry: dict[str, Any] = {
            "sigma": sigma,
            "clean_accuracy": seed_stats([r["deploy"]["accuracy"] for r in rows[sigma]]),
            "activation_sparsity": seed_stats(
                [r["deploy"]["activation_sparsity"] for r in rows[sigma]]),
            "energy_joules_per_sample": seed_stats(
                [r["deploy"]["energy"]["joules_per_sample"] for r in rows[sigma]]),
            "robust_accuracy": {},
        }
        for attack in protocol.attacks:
            per_eps = []
            for i, eps in enumerate(protocol.eps):
                vals = [r["robustness"]["curves"][attack]["torch"][i]["mean"]
                        for r in rows[sigma]]
                per_eps.append({"eps": eps, **seed_stats(vals)})
            entry["robust_accuracy"][attack] = per_eps
        entry["flags_ok"] = {
            name: [r["robustness"]["flags"][name]["ok"] for r in rows[sigma]]
            for name in rows[sigma][0]["robustness"]["flags"]
        }
        table.append(entry)
    result = {"sigmas": sigmas, "seeds": seeds, "protocol": protocol.to_dict(), "table": table,
              "runs": {str(s): [str(out / f"{base_cfg['name']}-sigma{s:g}-seed{r['seed']}")
                                for r in rows[s]] for s in sigmas}}
    write_json(out / "compare.json", result)
    write_text(out / "compare.md", markdown_table(result))
    plot_compare(result, out / "compare.png")
    return result


def markdown_table(result: dict[str, Any]) -> str:
    """One table: a row per sigma, mean +- std over seeds."""
    attacks = list(result["table"][0]["robust_accuracy"])
    eps = [p["eps"] for p in result["table"][0]["robust_accuracy"][attacks[0]]]
    head = ["sigma", "clean acc", "sparsity", "energy/sample (uJ)"]
    head += [f"{a} @ {e:.3g}" for a in attacks for e in eps if e > 0]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pm(s: dict[str, float], scale: float = 1.0) -> str:
        return f"{s['mean'] * scale:.3f} ± {s['std'] * scale:.3f}"

    for row in result["table"]:
        cells = [f"{row['sigma']:g}", pm(row["clean_accuracy"]), pm(row["activation_sparsity"]),
                 pm(row["energy_joules_per_sample"], 1e6)]
        cells += [pm(p) for a in attacks for p in row["robust_accuracy"][a] if p["eps"] > 0]
        lines.append("| " + " | ".join(cells) + " |")
    n = result["table"][0]["clean_accuracy"]["n"]
    lines.append(f"\nmean ± std over {n} training seed(s); robust accuracy on the torch model, "
                 "mean over fresh draws; energy is the profile's lower-bound proxy estimate.")
    return "\n".join(lines) + "\n"


