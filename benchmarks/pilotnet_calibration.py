"""randhet's chip model on lava-dl's PilotNet LIF network beside what Intel's Loihi 2 compiler
and board measured for it (lava-dl's pilotnet_snn/benchmark.ipynb, summarised with the file in
``../shared/data/lava-dl-pilotnet-lif/``).

Run by hand (not a test)::

    .venv/bin/python benchmarks/pilotnet_calibration.py           # profiles, ~1 minute
    .venv/bin/python benchmarks/pilotnet_calibration.py --lava    # + Lava netx check, ~5 min

Profiles the stock file with ``randhet profile`` on loihi2 (and loihi1) over ``--samples``
synthetic inputs (the PilotNet driving frames are not here: spike rates, and so time and
energy, depend on the input) and writes per-layer cores beside the compiler's, time per step,
energy per inference and their ratios to the measurements. With ``--lava`` it also runs
lava-dl's own netx network on Lava's CPU simulator for 2 samples and compares every layer's
raster with randhet's emulator. Writes ``benchmarks/results/pilotnet_calibration.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import numpy as np

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.deploy.pipeline import run_profile

ROOT = harness.ROOT
FILE = ROOT.parent / "shared" / "data" / "lava-dl-pilotnet-lif" / "network.net"
RESULTS = harness.RESULTS / "pilotnet_calibration.json"
SOURCE = ("lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb, outputs committed "
          "2023-01-10 (Oheo Gulch, one Loihi 2 chip); "
          "../shared/data/lava-dl-pilotnet-lif/README.md")
MEASURED = {  # Intel's compiler and board, for this file
    "cores": {"0:input": 13, "1:conv:24:s2": 25, "2:conv:36:s2": 13, "3:conv:48:s2": 3,
              "4:conv:64:s2x1": 3, "5:conv:64": 2, "6:dense:100": 12, "7:dense:50": 1,
              "8:dense:10": 1, "9:dense:1": 1},
    "time_per_step_s": 1 / 408.91 / 16,
    "throughput_samples_per_s": 408.91,
    "dynamic_energy_joules_per_sample": 1.093544e-3,
    "energy_joules_per_sample": 1.661103e-3,
    "static_power_w": 0.232078,
}


def _ratio(ours: float | None, theirs: float) -> float | None:
    return None if ours is None else ours / theirs


def profile(chip: str, samples: int, out: Path) -> dict[str, Any]:
    seconds, profiled = harness.timed(lambda: run_profile(
        FILE, samples=samples, profile=chip, seed=0, out_dir=out / chip, progress=False))
    report = profiled.to_dict()  # the fields of profile.json
    timing = report["timing"]
    row: dict[str, Any] = {
        "profile": chip, "seconds": seconds, "workload": report["workload"],
        "cores": {ly["name"]: ly["cores"] for ly in report["resources"]["layers"]},
        "total_cores": report["resources"]["total_cores"], "chips": report["resources"]["chips"],
        "timing_basis": timing["basis"], "timing_source": timing["source"],
        "time_per_step_s": timing["time_per_step_s"],
        "throughput_samples_per_s": timing["throughput_samples_per_s"],
        "bounding_layer": timing["bounding_layer"],
        "dynamic_energy_joules_per_sample": timing["dynamic_energy_joules_per_sample"],
        "static_energy_joules_per_sample": timing["static_energy_joules_per_sample"],
        "energy_joules_per_sample": timing["energy_joules_per_sample"],
        "activation_sparsity": report["activation_sparsity"],
    }
    if chip == "loihi2":  # the measurements are of a Loihi 2
        row["ratio_to_measured"] = {
            "cores": row["total_cores"] / sum(MEASURED["cores"].values()),
            **{key: _ratio(row[key], MEASURED[key]) for key in (
                "time_per_step_s", "dynamic_energy_joules_per_sample",
                "energy_joules_per_sample")}}
    return row


def lava_check(samples: int) -> dict[str, Any]:
    from randhet.decays import deployment_draws
    from randhet.deploy.emulator import emulate
    from randhet.deploy.lava_netx import run_netx_lava
    from randhet.deploy.workload import stock_workload
    from randhet.network import read_network

    net = read_network(FILE)
    work = stock_workload(net, None, samples, seed=0)
    ours = emulate(net, work.inputs, deployment_draws(net, samples, seed=0)).rasters
    lava_seconds, theirs = harness.timed(lambda: run_netx_lava(net, work.inputs).rasters)
    return {"samples": samples, "lava_seconds": lava_seconds,
            "layers_equal": [bool(np.array_equal(a, b)) for a, b in zip(ours, theirs,
                                                                          strict=True)],
            "spikes_per_layer": [int(r.sum()) for r in ours]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--lava", action="store_true", help="also check the emulator against "
                   "lava-dl's netx network on Lava (2 samples, minutes)")
    args = p.parse_args()
    if not FILE.is_file():
        sys.exit(f"pilotnet_calibration: {FILE} is absent (../shared/data)")
    start = harness.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [profile(chip, args.samples, Path(tmp)) for chip in ("loihi2", "loihi1")]
    result: dict[str, Any] = {
        "benchmark": "pilotnet_calibration", "machine": harness.machine(), "loadavg_start": start,
        "file": str(FILE.relative_to(ROOT.parent)), "measured": MEASURED,
        "measured_source": SOURCE, "samples": args.samples, "profiles": rows,
        "note": ("the loihi2 [placement] rules were fitted to this network's compiler table, "
                 "so its core counts are a reproduction, not an independent check; the inputs "
                 "are synthetic, the board ran driving frames"),
    }
    if args.lava:
        result["lava_netx_check"] = lava_check(2)
    result["loadavg_end"] = harness.loadavg()
    harness.write_json(RESULTS, result)
    for row in rows:
        r = row.get("ratio_to_measured", {})
        print(f"{row['profile']}: {row['total_cores']} cores, "
              f"{row['time_per_step_s'] * 1e6:.1f} us/step, energy "
              f"{row['energy_joules_per_sample'] * 1e3:.3f} mJ/inference"
              + (f"; ratios to the board: cores {r['cores']:.2f}, time "
                 f"{r['time_per_step_s']:.2f}, dynamic energy "
                 f"{r['dynamic_energy_joules_per_sample']:.2f}, energy "
                 f"{r['energy_joules_per_sample']:.2f}" if r else ""))
    if args.lava:
        print(f"Lava netx check: layers equal {result['lava_netx_check']['layers_equal']}")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
