"""The budget ladder's verdict on the demo network: the old configuration against the new one.

Run by hand (not a test; minutes)::

    .venv/bin/python benchmarks/convergence_check.py --run runs/demo    # after `make demo`
    .venv/bin/python benchmarks/convergence_check.py                    # trains the demo first

Both run randhet's protocol (:mod:`randhet.attack.schedule`: the budget doubles restarts,
iterations and EOT draws in turn; a doubling that lowers the per-sample worst accuracy by more
than the margin, in a paired one-sided test, means "not converged") on the same 100 test
samples and seeds:

- ``old``: what randhet reported before issue 26, PGD-10 with cross-entropy on spike counts, the
  trained surrogate, EOT 8 and 2 restarts (the demo's former ``[attack]`` table), alone;
- ``new``: the demo's ``[attack]`` table (``configs/digits.toml``), the ensemble.

Writes ``benchmarks/results/convergence_check.json`` with each ladder's doublings (fall and
p-value per doubling), whether it converged, and the robust accuracy it reports per eps.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import harness

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.attack.run import attack_run
from randhet.config import load_config, protocol_config
from randhet.export import export_run
from randhet.train.trainer import train

RESULTS = harness.RESULTS / "convergence_check.json"
CONFIG = harness.ROOT / "configs" / "digits.toml"


def ladder(run: Path, name: str, protocol: Any, out: Path) -> dict[str, Any]:
    seconds, rob = harness.timed(lambda: attack_run(run, protocol, out / name, progress=False))
    return {
        "protocol": protocol.to_dict(),
        "members": list(rob.members),
        "seconds": seconds,
        "converged": {f"{c.eps:g}": c.converged for c in rob.convergence if c.eps > 0},
        "doublings": {f"{c.eps:g}": [dataclasses.asdict(d) for d in c.doublings]
                      for c in rob.convergence if c.eps > 0},
        "robust_accuracy": {f"{h.eps:g}": [h.accuracy, h.ci_low, h.ci_high]
                            for h in rob.headline if h.target == "torch"},
        "flags": {f.name: f.ok for f in rob.flags},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="the demo's run folder (default: train one)")
    args = p.parse_args()
    cfg = load_config(CONFIG)
    new = protocol_config(cfg)
    old = dataclasses.replace(new, attacks=("pgd",), losses=("ce",), readouts=("counts",),
                              surrogates=("trained",), eot=8, steps=10, restarts=2,
                              targets=("torch",), transfer=False)
    load_start = harness.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "demo"
            train(cfg, run, progress=False)
            export_run(run)
        result = {"benchmark": "convergence_check", "machine": harness.machine(),
                  "loadavg_start": load_start, "network": str(run),
                  "old": ladder(run, "old", old, Path(tmp)),
                  "new": ladder(run, "new", new, Path(tmp)), "loadavg_end": harness.loadavg()}
    harness.write_json(RESULTS, result)
    for name in ("old", "new"):
        r = result[name]
        print(f"{name}: converged {r['converged']}; robust accuracy {r['robust_accuracy']}; "
              f"{r['seconds']:.0f} s")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
