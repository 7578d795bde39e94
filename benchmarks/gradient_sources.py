"""Where are RandHet's gradients masked: in the decay draws or in the weights?

Run by hand (not a test; about 5 minutes on 2 cores for 3 seeds)::

    .venv/bin/python benchmarks/gradient_sources.py --grid runs/cmp-sigma012

``randhet compare``'s per-kind columns show RandHet's gradient members alone leaving about
twice what Square alone leaves, where on the sigma = 0 control it is the other way round. This
script asks whether a gradient from a *deterministic* network reaches RandHet better than
RandHet's own EOT gradients. For every seed of a compare grid it takes the RandHet cell
(``--cell``) and the sigma = 0 control, and crafts APGD inputs at ``--eps`` on two
deterministic sources (so one draw is the gradient and EOT is 1):

- ``twin``: RandHet's own weights with the mean decays and no draws (the sigma = 0 twin);
- ``control``: the sigma = 0 network trained on the same seed (a transfer for RandHet).

Each source runs every loss and readout of the run's ``[attack]`` table with every
``--surrogates`` at the top of its budget ladder (``max_doublings``: steps, restarts; EOT 1).
Every input is scored on RandHet (torch, the protocol's scoring draws), on the twin and on
the control (one draw each: deterministic). Per source: the strongest member alone, and all
its members combined per sample the way the protocol combines them (the input with the lowest
accuracy on separate selection draws, scored on the scoring draws). Beside them, from the
runs' own ``robustness.json``: the protocol's ensemble, its strongest gradient member alone
(EOT on the network itself) and Square alone, torch scoring. Writes ``--out-json`` and a
Markdown table beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import harness
import numpy as np
import torch

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.attack.members import Member, build, craft
from randhet.attack.results import ROBUSTNESS_FILE, Curve, strongest_alone
from randhet.attack.scoring import prediction_matrix, torch_predictor
from randhet.config import protocol_config
from randhet.experiments.results import SeedStat
from randhet.io import write_text
from randhet.runs import open_run

SOURCES = ("twin", "control")  # the deterministic networks the inputs are crafted on
SCORED = ("randhet", "twin", "control")  # the networks the inputs are scored on
SELECT_SEED, SCORE_SEED = 10_000, 20_000  # first seeds of the selection and scoring draws


@dataclass(frozen=True)
class FromSource:
    """Inputs crafted on one source, scored on one network: the strongest member alone and
    every member combined per sample (selection draws apart from scoring draws)."""

    source: str
    scored: str
    strongest_member: float
    strongest_member_name: str
    combined: float


@dataclass(frozen=True)
class SeedResult:
    """One seed: the protocol's own numbers on RandHet and the control (torch, ``eps``), and
    every (source, scored network) pair."""

    seed: int
    randhet_run: str
    control_run: str
    protocol: dict[str, dict[str, float | None]]  # network -> ensemble / gradient / square
    pairs: tuple[FromSource, ...]
    crafted_seconds: float


def _protocol_numbers(run: Path, eps: float) -> dict[str, float | None]:
    """The run's own robustness.json at ``eps``: the ensemble's torch headline, the strongest
    gradient member alone and the strongest gradient-free member alone."""
    rob = json.loads((run / ROBUSTNESS_FILE).read_text())
    curves = tuple(Curve.from_dict(c) for c in rob["per_attack"])
    head = next(h["accuracy"] for h in rob["headline"]
                if h["target"] == "torch" and abs(h["eps"] - eps) < 1e-9)
    return {"ensemble": head, "gradient_alone": strongest_alone(curves, [eps], True)[0],
            "square_alone": strongest_alone(curves, [eps], False)[0]}


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, seed: int,
              draws: int) -> np.ndarray:
    """Per-sample accuracy [n] over ``draws`` draws from ``seed``."""
    return (prediction_matrix(torch_predictor(model), x, seed, draws) == y[None]).mean(0)


def measure(grid: Path, cell: str, seed: int, eps: float, surrogates: list[str]
            ) -> SeedResult:
    """Craft on both sources and score on every network for one seed."""
    r_run, c_run = grid / cell / f"seed{seed}", grid / "neuron.sigma-0.0" / f"seed{seed}"
    opened = open_run(r_run)
    randhet_model = opened.model()
    control = open_run(c_run).model()
    twin = randhet_model.randomness_off_twin()
    cfg = protocol_config(opened.config)
    data = opened.data()
    x = torch.as_tensor(data.x_test[:cfg.samples])
    y = torch.as_tensor(data.y_test[:cfg.samples])
    budget = dataclasses.replace(cfg.budget(cfg.max_doublings), eot=1)
    models = {"randhet": randhet_model, "twin": twin, "control": control}
    draws = {"randhet": cfg.draws, "twin": 1, "control": 1}
    select = {"randhet": cfg.selection_draws, "twin": 1, "control": 1}
    members = [Member("apgd", loss, readout, s) for loss in cfg.losses
               for readout in cfg.readouts for s in surrogates]
    yn = y.numpy()
    pairs: list[FromSource] = []
    seconds = 0.0
    for si, source in enumerate(SOURCES):
        crafted = []
        for mi, member in enumerate(members):
            model = models[source]
            torch.manual_seed(seed * 1000 + si * 100 + mi)
            model.generator.manual_seed(seed * 1000 + si * 100 + mi)
            attack = build(member, model, model, eps, budget, seed * 1000 + si * 100 + mi)
            t, out = harness.timed(lambda m=member, a=attack: craft(m, a, x, y, len(x)))
            crafted.append(out)
            seconds += t
        for scored in SCORED:
            net = models[scored]
            sel = np.stack([_accuracy(net, xa, yn, SELECT_SEED, select[scored])
                            for xa in crafted])
            sco = np.stack([_accuracy(net, xa, yn, SCORE_SEED, draws[scored])
                            for xa in crafted])
            pick = sel.argmin(0)  # ties: the first member
            best = int(sco.mean(1).argmin())
            pairs.append(FromSource(source, scored, float(sco[best].mean()),
                                    members[best].name,
                                    float(sco[pick, np.arange(len(x))].mean())))
    protocol = {"randhet": _protocol_numbers(r_run, eps),
                "control": _protocol_numbers(c_run, eps)}
    return SeedResult(seed, str(r_run), str(c_run), protocol, tuple(pairs), seconds)


def _fmt(values: list[float | None]) -> str:
    s = SeedStat.of(values)
    return "n/a" if s.mean is None else f"{s.mean:.3f} ± {s.std:.3f}"


def table(results: list[SeedResult], eps: float) -> str:
    """Mean ± std over seeds per scored network: the protocol's numbers, then each source."""
    head = ["scored on", f"protocol ensemble @ {eps:g}", "protocol gradient alone (EOT)",
            "Square alone", *[f"crafted on {s}: strongest member / combined" for s in SOURCES]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for scored in SCORED:
        cells = []
        for key in ("ensemble", "gradient_alone", "square_alone"):
            cells.append(_fmt([r.protocol[scored][key] for r in results])
                         if scored in results[0].protocol else "n/a")
        for source in SOURCES:
            got = [p for r in results for p in r.pairs if p.source == source
                   and p.scored == scored]
            mark = " (white-box)" if source == scored else ""
            cells.append(f"{_fmt([p.strongest_member for p in got])} / "
                         f"{_fmt([p.combined for p in got])}{mark}")
        lines.append(f"| {scored} | " + " | ".join(cells) + " |")
    lines += ["", "Strongest member per seed (source -> scored: member):", ""]
    for r in results:
        lines.append(f"- seed {r.seed}: " + "; ".join(
            f"{p.source} -> {p.scored}: {p.strongest_member_name} {p.strongest_member:.3f}"
            for p in r.pairs))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="runs/cmp-sigma012", help="a randhet compare --out folder")
    p.add_argument("--cell", default="neuron.granularity-neuron_neuron.sigma-1.0",
                   help="the RandHet cell's folder in the grid")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--surrogates", default="trained,width=0.3,width=1")
    p.add_argument("--out-json", default=str(harness.RESULTS / "compare" /
                                             "digits-gradient-sources.json"))
    args = p.parse_args()
    start = harness.machine()
    results = [measure(Path(args.grid), args.cell, int(s), args.eps,
                       args.surrogates.split(",")) for s in args.seeds.split(",")]
    text = table(results, args.eps)
    print(text)
    out = Path(args.out_json)
    harness.write_json(out, {"grid": args.grid, "cell": args.cell, "eps": args.eps,
                             "surrogates": args.surrogates.split(","),
                             "results": [asdict(r) for r in results],
                             "machine": start, "load_at_end": harness.loadavg()})
    write_text(out.with_suffix(".md"), text)


if __name__ == "__main__":
    main()
