"""randhet's Loihi 1 time and energy model (loihi1's default ``sanafe`` basis) against SANA-FE
2.2.9 itself, on the demo's network and on a conv network, placed by randhet, fed the same
input spikes (tests/sanafe_run.py; SANA-FE is GPL-3.0: ``pip install sanafe==2.2.9``).

Run by hand (not a test)::

    .venv/bin/python benchmarks/sanafe_agreement.py      # trains both (rate coding), ~5 min

SANA-FE's input neurons send binary spikes, so both networks are trained with rate coding
(the demo config otherwise unchanged: 64-128-10, sigma 1; the conv network:
``conv:8, pool:2, dense:10``). Each is compared twice on ``--samples`` test samples run back to
back: as trained (sample 0's decay draw for every sample; SANA-FE's LIF does not truncate the
decayed current and resets nothing between samples, so its spikes differ: the counts are in the
output), and with the same weights at decays of 1 (no state outlives a step, so both run the
same spikes and only the cost models differ). Writes
``benchmarks/results/sanafe_agreement.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import harness
import torch

import randhet  # noqa: F401  (Lava compatibility fix first)
from randhet.config import load_config
from randhet.data import load_dataset
from randhet.decays import DecayDraw, deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.fit import check_fit
from randhet.deploy.timing import step_times, timed_placement
from randhet.export import export_run
from randhet.hardware import load_profile
from randhet.models.exported import encode_integers, model_from_export
from randhet.network import ExportedNetwork, read_network
from randhet.train.trainer import train

ROOT = harness.bootstrap("tests")  # tests/sanafe_run.py (imported where SANA-FE runs)
RESULTS = harness.RESULTS / "sanafe_agreement.json"
NETWORKS = {"demo (64-128-10, rate)": [],
            "conv (conv:8, pool:2, dense:10, rate)": ['model.layers=["conv:8", "pool:2"]']}


def _memoryless(net: ExportedNetwork) -> ExportedNetwork:
    """The same weights with decays of 1 (u and v kept for no step) and no random draws."""
    neuron = replace(net.spec.neuron, sigma=0.0)
    layers = tuple(replace(ly, current_decay=4096, voltage_decay=4095) for ly in net.layers)
    return replace(net, spec=replace(net.spec, neuron=neuron), layers=layers)


def compare(net: ExportedNetwork, inputs: Any, samples: int) -> dict[str, Any]:
    from sanafe_run import run_stream  # needs sanafe (GPL-3.0)

    profile = load_profile("loihi1")
    first = deployment_draws(net, samples, seed=0)
    draws = [DecayDraw(d.current[:1].expand(samples, *d.current.shape[1:]).clone(),
                       d.voltage[:1].expand(samples, *d.voltage.shape[1:]).clone())
             for d in first]
    fit = check_fit(net, profile, draws)
    result = emulate(net, inputs, draws)
    ours = step_times(net, inputs, result, fit, profile, dynamic_joules=0.0)
    assert ours is not None
    placed = timed_placement(fit)
    assert placed is not None
    steps = inputs.shape[-1]
    stream = inputs.reshape(samples, -1, steps).transpose(1, 0, 2).reshape(-1, samples * steps)
    theirs = run_stream(net, placed[0], stream, draws)
    their_step = theirs.latency_s / (samples * steps + len(net.layers))
    their_energy = theirs.energy_j / samples
    return {"cores": placed[1], "placement": placed[3],
            "randhet": {"time_per_step_s": ours.time_per_step_s,
                        "energy_joules_per_sample": ours.dynamic_energy_joules_per_sample,
                        "spikes": [int(r.sum()) for r in result.rasters]},
            "sanafe": {"time_per_step_s": their_step, "energy_joules_per_sample": their_energy,
                       "spikes": theirs.spikes},
            "ratio_time": ours.time_per_step_s / their_step,
            "ratio_energy": ours.dynamic_energy_joules_per_sample / their_energy}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16)
    args = p.parse_args()
    start = harness.loadavg()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in NETWORKS.items():
            run = Path(tmp) / str(len(rows))
            cfg = load_config(ROOT / "configs" / "digits.toml",
                              ['encoding.kind="rate"', *overrides])
            train(cfg, run, progress=False)
            net = read_network(export_run(run))
            x = torch.as_tensor(load_dataset(net.data).x_test[:args.samples])
            inputs = encode_integers(model_from_export(net), x, seed=0)
            rows[name] = {"as trained": compare(net, inputs, args.samples),
                          "decays of 1": compare(_memoryless(net), inputs, args.samples)}
            for how, row in rows[name].items():
                print(f"{name}, {how}: time {row['ratio_time']:.3f}x, energy "
                      f"{row['ratio_energy']:.3f}x SANA-FE's; spikes randhet "
                      f"{row['randhet']['spikes']}, SANA-FE {row['sanafe']['spikes']}")
    result = {"benchmark": "sanafe_agreement", "machine": harness.machine(),
              "loadavg_start": start, "loadavg_end": harness.loadavg(),
              "samples": args.samples, "sanafe": "2.2.9", "networks": rows}
    harness.write_json(RESULTS, result)
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
