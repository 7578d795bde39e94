"""Deployment speed: Lava's bit-accurate Loihi 2 CPU simulator against the batched emulator.

Run by hand (not a test)::

    .venv/bin/python benchmarks/deploy_speed.py            # full run (~5-8 minutes on 2 cores)
    .venv/bin/python benchmarks/deploy_speed.py --quick    # smallest sizes

Setup: a few networks are trained briefly (1 epoch: speed does not depend on accuracy) on the
embedded digits and exported (netx HDF5) into a temporary folder. Inputs and decay draws are
prepared exactly as :func:`randhet.deploy.pipeline.deploy` prepares them (``model.encoder`` on
the test split, :func:`~randhet.decays.deployment_draws` with seed 1); the draws are
made once for the largest sample count and sliced, so every run of a network sees the same
inputs and the same decays.

Part 1, per network (dense 64-128-10 and conv c12s2-c24s2-64-10, T = 16): Lava
(:func:`~randhet.deploy.lava_backend.run_lava`: one compiled network, all samples in one
stream) on two sample counts, and the emulator (:func:`~randhet.deploy.emulator.emulate`,
batched) on the same counts. Lava's wall time INCLUDES building the process graph, compiling,
starting the runtime, running, reading back and stopping (Python imports are done beforehand,
and one small warm-up Lava run absorbs the first-run costs of the process). The steady-state
time per sample is the difference of the two wall times divided by the difference of the
counts, which cancels the fixed costs. Emulator times are the minimum over repeated calls (the
2 cores are usually shared; the median is stored too); its time per sample is the wall time of
ONE batched call of the largest count (359 = the whole test split) divided by the count, fixed
costs included. The emulator is timed with torch's default number of intra-op threads (what
``randhet deploy`` uses; ``--threads`` changes it) and with 1 thread. Every sample's rasters
and ``active_steps`` of every layer are compared between the two backends. Target: emulator
at least 100x faster per sample than Lava (Lava steady state vs emulator batched); the ratio of
total wall times on Lava's largest count is shown too.

Part 2, scaling: with the number of samples, of hidden layers (1, 2, 4 dense layers of 64) and
of time steps T (8, 16, 32). Part 3: ``randhet deploy --backend emulator`` over the whole digits
test split as a subprocess, against the bare ``import randhet.deploy.pipeline``.

Prints tables and writes ``benchmarks/results/deploy_speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from deploy_nets import EPOCHS, SEED, build, prepare

from randhet.decays import DecayDraw
from randhet.deploy.emulator import emulate
from randhet.deploy.result import RunResult
from randhet.network import ExportedNetwork, read_network
from randhet.spec import DenseSpec

ROOT = harness.ROOT
RESULTS = harness.RESULTS / "deploy_speed.json"
TARGET = 100.0  # emulator / Lava speed per sample
DEPLOY_MODULES = (  # what `randhet deploy --backend emulator` imports, lazily ones included
    "randhet.cli", "randhet.deploy.pipeline", "randhet.deploy.reference",
    "randhet.deploy.emulator", "randhet.plots.stages",
)
LAVA_MODULES = (  # what run_lava imports, imported before any timing
    "lava.magma.core.run_conditions", "lava.magma.core.run_configs", "lava.proc.conv.process",
    "lava.proc.dense.process", "lava.proc.io.source", "randhet.deploy.lava_backend",
    "randhet.deploy.lava_procs.randhet_lif", "randhet.deploy.lava_procs.shifted_conv",
)

# name -> config overrides (on randhet's defaults: digits, direct encoding, 4 input bits)
DENSE = ['model.layers=["dense:128"]', "encoding.timesteps=16"]
CONV = ['model.layers=["conv:12:s2", "conv:24:s2", "dense:64"]', "encoding.timesteps=16",
        "neuron.threshold=0.5", "train.lr=0.01"]  # as configs/digits-conv.toml (there T = 8)


def hidden64(layers: int) -> list[str]:
    tokens = ", ".join(['"dense:64"'] * layers)
    return [f"model.layers=[{tokens}]", "encoding.timesteps=16"]


def dense_t(steps: int) -> list[str]:
    return ['model.layers=["dense:128"]', f"encoding.timesteps={steps}"]


# ---------------------------------------------------------------------------------------------
# setup (the networks and their inputs: deploy_nets.py)


def head(inputs: np.ndarray, draws: list[DecayDraw], n: int) -> tuple[np.ndarray, list[DecayDraw]]:
    return inputs[:n], [DecayDraw(d.current[:n], d.voltage[:n]) for d in draws]


def describe(net: ExportedNetwork) -> str:
    first = net.layers[0].spec
    inp = first.in_features if isinstance(first, DenseSpec) else first.in_shape
    shapes = ["x".join(str(s) for s in np.atleast_1d(inp))]
    shapes += ["x".join(str(s) for s in layer.shape) for layer in net.layers]
    return f"{'-'.join(shapes)}, T={net.spec.encoding.timesteps}"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------------------------
# timing


def time_lava(
    net: ExportedNetwork, inputs: np.ndarray, draws: list[DecayDraw], n: int
) -> tuple[float, RunResult]:
    """Wall seconds of one run_lava call (graph + compile + start + run + read + stop)."""
    from randhet.deploy.lava_backend import run_lava

    x, d = head(inputs, draws, n)
    return harness.timed(lambda: run_lava(net, x, d))


def lava_runs(
    label: str, net: ExportedNetwork, inputs: np.ndarray, draws: list[DecayDraw],
    counts: list[int], repeats: int,
) -> tuple[dict[int, float], dict[int, list[float]], dict[int, RunResult]]:
    """Per count: the min wall seconds over ``repeats`` runs, all walls, the last result."""
    from randhet.deploy.lava_backend import run_lava

    subsets = {n: head(inputs, draws, n) for n in counts}
    t = harness.interleaved(
        {n: (lambda n=n: run_lava(net, *subsets[n])) for n in counts}, repeats, warmup=0,
        before=lambda n, _: print(f"  {label}: Lava, {n} samples ...", flush=True))
    return {n: min(v) for n, v in t.wall.items()}, t.wall, t.results


def time_emulator(
    net: ExportedNetwork, inputs: np.ndarray, draws: list[DecayDraw], counts: list[int],
    repeats: int, threads: int = 0,
) -> tuple[dict[int, dict[str, float]], dict[int, RunResult]]:
    """Per count: first, min and median wall seconds over ``repeats`` calls; the calls of the
    different counts are interleaved so that background load hits them alike."""
    subsets = {n: head(inputs, draws, n) for n in counts}
    with torch_threads(threads):
        t = harness.interleaved({n: (lambda n=n: emulate(net, *subsets[n])) for n in counts},
                                repeats, warmup=0)
    stats = {n: {"first_s": v[0], "min_s": min(v), "median_s": harness.median(v)}
             for n, v in t.wall.items()}
    return stats, t.results


def steady(t: dict[int, float]) -> tuple[float, str]:
    """Lava: seconds per sample from the two largest counts' wall times (fixed costs cancel);
    if noise makes the difference non-positive, the largest count's wall time per sample
    (an upper bound) and a note."""
    (n1, t1), (n2, t2) = sorted(t.items())[-2:]
    if t2 > t1:
        return (t2 - t1) / (n2 - n1), f"(wall {n2} - wall {n1}) / {n2 - n1}"
    return t2 / n2, f"difference <= 0 (noise): wall {n2} / {n2} used"


def batched(emu: dict[int, dict[str, float]]) -> tuple[float, float, int]:
    """Emulator seconds per sample in one batched call of the largest count (fixed costs
    included, so an upper bound), the marginal cost between the two largest counts, the count."""
    n = max(emu)
    marginal = float("nan")
    if len(emu) > 1:
        marginal, _ = steady({k: v["min_s"] for k, v in emu.items()})
    return emu[n]["min_s"] / n, marginal, n


def bit_exact(a: RunResult, b: RunResult, n: int) -> dict[str, int]:
    """Samples whose rasters (every layer), active_steps (every layer), both, agree."""
    ras = np.ones(n, dtype=bool)
    act = np.ones(n, dtype=bool)
    for x, y in zip(a.rasters, b.rasters, strict=True):
        ras &= (x[:n] == y[:n]).reshape(n, -1).all(axis=1)
    for x, y in zip(a.active_steps, b.active_steps, strict=True):
        act &= np.asarray(x[:n]) == np.asarray(y[:n])
    return {"samples": n, "rasters": int(ras.sum()), "active_steps": int(act.sum()),
            "both": int((ras & act).sum())}


def spike_rates(r: RunResult) -> list[float]:
    """Mean spikes per neuron per step, per layer (to show the comparison is not trivial)."""
    return [float(x.mean()) for x in r.rasters]


# ---------------------------------------------------------------------------------------------
# parts


def compare(
    name: str, net: ExportedNetwork, lava_counts: list[int], emu_counts: list[int],
    repeats: int, lava_repeats: int, threads: int, extra_threads: list[int],
) -> dict[str, Any]:
    """Lava against the emulator on the same network, inputs and draws."""
    inputs, draws = prepare(net, max(lava_counts + emu_counts))
    emu_counts = sorted({min(n, len(inputs)) for n in emu_counts + lava_counts})
    lava, lava_all, lava_results = lava_runs(name, net, inputs, draws, lava_counts, lava_repeats)
    print(f"  {name}: emulator, {emu_counts} samples x {repeats} ...", flush=True)
    emu, emu_results = time_emulator(net, inputs, draws, emu_counts, repeats, threads)
    checks = {n: bit_exact(lava_results[n], emu_results[n], n) for n in lava_counts}
    n_top = max(lava_counts)
    lava_per, lava_how = steady(lava)
    emu_per, emu_marginal, emu_n = batched(emu)
    out: dict[str, Any] = {
        "network": name, "layers": describe(net), "timesteps": net.spec.encoding.timesteps,
        "lava": {
            "wall_s": {str(n): v for n, v in lava.items()},
            "wall_s_all_runs": {str(n): v for n, v in lava_all.items()},
            "wall_includes": "process graph, compile, runtime start, run, read-back, stop "
                             "(imports excluded; min over runs)",
            "samples_per_s_total": n_top / lava[n_top],
            "steady_s_per_sample": lava_per, "steady_from": lava_how,
        },
        "emulator": {
            "torch_threads": threads or torch.get_num_threads(),
            "wall_s": {str(n): v for n, v in emu.items()},
            "samples_per_s_total": n_top / emu[n_top]["min_s"],
            "steady_s_per_sample": emu_per,
            "steady_from": f"wall of one batched call of {emu_n} samples / {emu_n}",
            "marginal_s_per_sample": emu_marginal,
        },
        "bit_exact": {str(n): c for n, c in checks.items()},
        "all_bit_exact": all(c["both"] == c["samples"] for c in checks.values()),
        "spike_rates": spike_rates(emu_results[n_top]),
        "ratio_steady": lava_per / emu_per,
        "ratio_total": lava[n_top] / emu[n_top]["min_s"],
        "ratio_total_emulator_first_call": lava[n_top] / emu[n_top]["first_s"],
        "ratio_total_samples": n_top,
        "target": TARGET,
    }
    out["pass"] = out["ratio_steady"] >= TARGET and out["all_bit_exact"]
    other = {}
    for th in extra_threads:
        if th == out["emulator"]["torch_threads"]:
            continue
        e, _ = time_emulator(net, inputs, draws, emu_counts, repeats, th)
        per, marginal, _ = batched(e)
        other[str(th)] = {"wall_s": {str(n): v for n, v in e.items()}, "steady_s_per_sample": per,
                          "marginal_s_per_sample": marginal, "ratio_steady": lava_per / per,
                          "ratio_total": lava[n_top] / e[n_top]["min_s"]}
        other[str(th)]["pass"] = other[str(th)]["ratio_steady"] >= TARGET
    out["emulator_other_threads"] = other
    return out


def sweep(
    label: str, nets: dict[str, ExportedNetwork], lava_counts: list[int],
    emu_counts: list[int], repeats: int, lava_repeats: int, threads: int,
) -> list[dict[str, Any]]:
    """Per network: Lava per-sample (steady) and emulator per-sample, and their ratio."""
    rows = []
    for key, net in nets.items():
        inputs, draws = prepare(net, max(lava_counts + emu_counts))
        lava, _, lava_results = lava_runs(f"{label} {key}", net, inputs, draws, lava_counts,
                                          lava_repeats)
        counts = sorted(set(emu_counts + lava_counts))
        emu, emu_results = time_emulator(net, inputs, draws, counts, repeats, threads)
        lava_per, _ = steady(lava)
        emu_per, emu_marginal, emu_n = batched(emu)
        one, _ = time_emulator(net, inputs, draws, [emu_n], repeats, 1)
        one_per, _, _ = batched(one)
        n_top = max(lava_counts)
        rows.append({
            "key": key, "layers": describe(net), "spiking_layers": len(net.layers),
            "timesteps": net.spec.encoding.timesteps,
            "lava_wall_s": {str(n): v for n, v in lava.items()},
            "lava_steady_s_per_sample": lava_per,
            "emulator_wall_s": {str(n): v for n, v in emu.items()},
            "emulator_batch": emu_n,
            "emulator_s_per_sample": emu_per,
            "emulator_marginal_s_per_sample": emu_marginal,
            "ratio_steady": lava_per / emu_per,
            "emulator_1_thread_s_per_sample": one_per,
            "ratio_steady_1_thread": lava_per / one_per,
            "bit_exact": bit_exact(lava_results[n_top], emu_results[n_top], n_top),
        })
    return rows


def sample_scaling(
    net: ExportedNetwork, lava_wall: dict[int, float], emu_counts: list[int], repeats: int,
    threads: int,
) -> dict[str, Any]:
    inputs, draws = prepare(net, max(emu_counts))
    counts = sorted({min(n, len(inputs)) for n in emu_counts})
    emu, _ = time_emulator(net, inputs, draws, counts, repeats, threads)
    return {
        "lava": [{"samples": n, "wall_s": t, "samples_per_s": n / t}
                 for n, t in sorted(lava_wall.items())],
        "emulator": [{"samples": n, **emu[n], "samples_per_s": n / emu[n]["min_s"]}
                     for n in counts],
    }


def cli_deploy(net: ExportedNetwork, tmp: Path) -> dict[str, Any]:
    """`randhet deploy --backend emulator` over the whole test split, as a subprocess."""
    exe = Path(sys.executable).parent / "randhet"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "randhet"]
    out = tmp / "cli_deploy"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))

    def wall(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
        return harness.timed(lambda: subprocess.run(args, env=env, capture_output=True,
                                                    text=True, check=False))

    def best_of_2(code: str) -> float:
        return min(harness.time_calls(lambda: wall([sys.executable, "-c", code]), 2,
                                      warmup=0)[0])

    interp = best_of_2("pass")
    torch_s = best_of_2("import torch")
    imports = best_of_2("import randhet.deploy.pipeline")
    all_imports = best_of_2(f"import {', '.join(DEPLOY_MODULES)}")
    full = [*cmd, "deploy", str(net.path), "--backend", "emulator", "--samples", "0",
            "--quiet", "--out", str(out)]
    seconds, proc = wall(full)
    res: dict[str, Any] = {
        "command": " ".join(["randhet", *full[len(cmd):]]), "returncode": proc.returncode,
        "wall_s": seconds, "python_startup_s": interp, "import_torch_s": torch_s,
        "import_pipeline_s": imports,
        "import_all_deploy_modules_s": all_imports, "deploy_modules": list(DEPLOY_MODULES),
    }
    if proc.returncode != 0:
        res["stderr_tail"] = proc.stderr[-2000:]
        return res
    report = json.loads((out / "deploy.json").read_text())
    from randhet.deploy.pipeline import deploy

    res["in_process_deploy_s"], _ = harness.timed(  # the same call in this (warm) process
        lambda: deploy(net.path, backend="emulator", samples=0, out_dir=tmp / "inproc_deploy",
                       progress=False))
    res |= {
        "samples": report["samples"], "emulate_wall_s": report["wall_seconds"],
        "bit_exact_fraction_vs_torch": report["bit_exact_fraction"],
        "accuracy": report["accuracy"], "stdout": proc.stdout.strip().splitlines()[-1:],
    }
    return res


# ---------------------------------------------------------------------------------------------
# report


def ms(s: float) -> str:
    return f"{s * 1e3:9.2f}"


def print_compare(rows: list[dict[str, Any]]) -> None:
    print("\nPart 1: Lava (bit-accurate CPU simulator) vs emulator, same network, inputs, draws")
    print("  Lava wall = build graph + compile + start + run + read back + stop (imports "
          "excluded, warm process), min over runs;\n  Lava ms/sample = difference of the two "
          "largest walls / difference of counts (steady state);\n  emulator: min over "
          "repeated calls; ms/sample = one batched call of the largest count / its count "
          "(fixed costs included)")
    h = (f"{'network':<44} {'backend':<9} {'samples':>7} {'wall s':>8} {'samples/s':>10} "
         f"{'ms/sample':>10}")
    print(h)
    print("-" * len(h))
    for r in rows:
        lw = {int(k): v for k, v in r["lava"]["wall_s"].items()}
        ew = {int(k): v for k, v in r["emulator"]["wall_s"].items()}
        label = f"{r['network']} ({r['layers']})"
        for i, (n, t) in enumerate(sorted(lw.items())):
            st = ms(r["lava"]["steady_s_per_sample"]) if i == len(lw) - 1 else ""
            print(f"{label if i == 0 else '':<44} {'lava':<9} {n:>7} {t:8.2f} {n / t:10.1f} "
                  f"{st:>10}")
        for n in sorted(ew):
            st = f"{r['emulator']['steady_s_per_sample'] * 1e3:10.3f}" if n == max(ew) else ""
            th = f"emu/{r['emulator']['torch_threads']}t"
            print(f"{'':<44} {th:<9} {n:>7} {ew[n]['min_s']:8.3f} "
                  f"{n / ew[n]['min_s']:10.0f} {st:>10}")
        for th, o in r["emulator_other_threads"].items():
            ow = {int(k): v for k, v in o["wall_s"].items()}
            n = max(ow)
            print(f"{'':<44} {'emu/' + th + 't':<9} {n:>7} {ow[n]['min_s']:8.3f} "
                  f"{n / ow[n]['min_s']:10.0f} {o['steady_s_per_sample'] * 1e3:10.3f}")
    print()
    for r in rows:
        checks = ", ".join(f"{c['both']}/{c['samples']}" for c in r["bit_exact"].values())
        print(f"  {r['network']}: bit-exact samples, Lava vs emulator (rasters and active_steps, "
              f"every layer): {checks}; spike rates per layer "
              f"{', '.join(f'{x:.3f}' for x in r['spike_rates'])}")
    for r in rows:
        n = r["ratio_total_samples"]
        runs = [(r["emulator"]["torch_threads"], r["ratio_steady"], r["ratio_total"],
                 r["pass"])]
        runs += [(int(th), o["ratio_steady"], o["ratio_total"],
                  o["pass"] and r["all_bit_exact"])
                 for th, o in r["emulator_other_threads"].items()]
        for th, steady_ratio, total_ratio, ok in runs:
            print(f"{'PASS' if ok else 'FAIL'}: {r['network']}, emulator with {th} torch "
                  f"thread(s): emulator/Lava per-sample speed = {steady_ratio:.0f}x "
                  f"(target >= {TARGET:.0f}x); on total wall times for {n} samples: "
                  f"{total_ratio:.0f}x")


def print_samples(s: dict[str, Any]) -> None:
    print("\nPart 2a: scaling with the number of samples (dense 64-128-10, T=16)")
    h = f"{'backend':<9} {'samples':>7} {'wall s':>8} {'median s':>9} {'samples/s':>10}"
    print(h)
    print("-" * len(h))
    for e in s["lava"]:
        print(f"{'lava':<9} {e['samples']:>7} {e['wall_s']:8.2f} {'':>9} "
              f"{e['samples_per_s']:10.1f}")
    for e in s["emulator"]:
        print(f"{'emulator':<9} {e['samples']:>7} {e['min_s']:8.3f} {e['median_s']:9.3f} "
              f"{e['samples_per_s']:10.0f}")


def print_sweep(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    h = (f"{'network':<24} {'Lava walls s (min)':<18} {'Lava ms/sample':>14} "
         f"{'emu ms/sample':>13} {'emu samples/s':>13} {'ratio':>6} {'1 thread':>20} "
         f"{'exact':>6}")
    print(h)
    print("-" * len(h))
    for r in rows:
        walls = ", ".join(f"{k}:{v:.2f}" for k, v in r["lava_wall_s"].items())
        ex = r["bit_exact"]
        one = (f"{r['emulator_1_thread_s_per_sample'] * 1e3:.3f} ms "
               f"{r['ratio_steady_1_thread']:4.0f}x")
        print(f"{r['layers']:<24} {walls:<18} {ms(r['lava_steady_s_per_sample']):>14} "
              f"{r['emulator_s_per_sample'] * 1e3:13.3f} "
              f"{1 / r['emulator_s_per_sample']:13.0f} {r['ratio_steady']:5.0f}x {one:>20} "
              f"{ex['both']:>3}/{ex['samples']}")


def print_cli(c: dict[str, Any]) -> None:
    print("\nPart 3: `randhet deploy --backend emulator` over the whole digits test split "
          "(subprocess)")
    if c["returncode"] != 0:
        print(f"  FAILED (exit {c['returncode']}):\n{c.get('stderr_tail', '')}")
        return
    print(f"  {c['command']}")
    print(f"  wall {c['wall_s']:.2f} s for {c['samples']} samples. For comparison: "
          f"`python -c pass` {c['python_startup_s']:.2f} s; `import torch` "
          f"{c['import_torch_s']:.2f} s; `python -c \"import "
          f"randhet.deploy.pipeline\"` {c['import_pipeline_s']:.2f} s; importing every module "
          f"the command uses (+ cli, reference, emulator, plots/matplotlib) "
          f"{c['import_all_deploy_modules_s']:.2f} s (Python start included in each);")
    rest = c["wall_s"] - c["import_all_deploy_modules_s"] - c["in_process_deploy_s"]
    print(f"  the same deploy() call in this warm process (no imports) "
          f"{c['in_process_deploy_s']:.2f} s, of which emulate() {c['emulate_wall_s']:.3f} s "
          f"(the rest: data loading, the torch reference run for the bit-exact check, metrics, "
          f"deploy.json and the plot);\n  left over: {rest:.2f} s of first-call costs in a "
          f"fresh process (and noise)")
    print(f"  bit-exact vs torch reference: {c['bit_exact_fraction_vs_torch']:.3f}, "
          f"accuracy {c['accuracy']:.3f} (1 training epoch)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smallest sizes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads for the emulator (default: torch's choice, "
                        "as `randhet deploy` runs it); part 1 also times 1 thread")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the trained networks in this folder (default: a temp folder)")
    args = parser.parse_args(argv)

    if args.quick:
        lava_main, emu_extra = [8, 24], [64]
        lava_sweep, emu_sweep = [8, 24], [64]
        emu_samples = [16, 64]
        layer_counts, step_counts, repeats, lava_repeats = [1, 2], [8, 16], 3, 1
    else:
        lava_main, emu_extra = [16, 32, 96], [256, 359]
        lava_sweep, emu_sweep = [16, 64], [256]
        emu_samples = [16, 64, 256, 359]
        layer_counts, step_counts, repeats, lava_repeats = [1, 2, 4], [8, 16, 32], 7, 2
    threads = args.threads if args.threads > 0 else torch.get_num_threads()
    info = harness.machine()
    load_start = harness.loadavg()
    print(f"randhet deploy speed: {info['date']}, {info['cpu_count']} CPUs "
          f"({info['cpus_usable']} usable), torch {info['torch']} ({threads} threads for the "
          f"emulator), numpy {info['numpy']}, lava-nc {info['lava_nc']}, load {load_start}")
    t_all = time.perf_counter()
    tmp_ctx = (contextlib.nullcontext(str(args.keep)) if args.keep
               else tempfile.TemporaryDirectory(prefix="randhet-deploy-speed-"))
    with tmp_ctx as tmp_name:
        tmp = Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        plan: dict[str, list[str]] = {"dense": DENSE, "conv": CONV}
        plan |= {f"hidden{k}": hidden64(k) for k in layer_counts}
        plan |= {f"dense_T{t}": dense_t(t) for t in step_counts if t != 16}
        nets: dict[str, ExportedNetwork] = {}
        build_s: dict[str, float] = {}
        for key, overrides in plan.items():
            if args.keep and (tmp / key / "network.net").is_file():
                nets[key], build_s[key] = read_network(tmp / key / "network.net"), 0.0
                continue
            print(f"  training ({EPOCHS} epoch) and exporting {key} ...", flush=True)
            nets[key], build_s[key] = build(key, overrides, tmp)
        nets_t = {f"dense_T{t}": nets["dense" if t == 16 else f"dense_T{t}"]
                  for t in step_counts}
        t_setup = time.perf_counter() - t_all

        # imports and one small Lava run first: the timed runs start in a warm process
        print("  warm-up: importing Lava and one 2-sample Lava run ...", flush=True)
        lava_import_s, _ = harness.timed(
            lambda: [importlib.import_module(module) for module in LAVA_MODULES])
        x, d = prepare(nets["dense"], 2)
        warm_s, _ = time_lava(nets["dense"], x, d, 2)
        with torch_threads(threads):
            emulate(nets["dense"], x, d)

        compare_rows = []
        for key in ("dense", "conv"):
            counts = lava_main if key == "dense" else lava_main[-2:]
            compare_rows.append(compare(key, nets[key], counts, emu_extra, repeats,
                                        lava_repeats, args.threads, [1]))
        dense_lava = {int(k): v for k, v in compare_rows[0]["lava"]["wall_s"].items()}
        print("  scaling with samples ...", flush=True)
        samples = sample_scaling(nets["dense"], dense_lava, emu_samples, repeats, args.threads)
        print("  scaling with layers ...", flush=True)
        layers = sweep("layers", {f"hidden{k}": nets[f"hidden{k}"] for k in layer_counts},
                       lava_sweep, emu_sweep, repeats, lava_repeats, args.threads)
        print("  scaling with T ...", flush=True)
        steps = sweep("T", nets_t, lava_sweep, emu_sweep, repeats, lava_repeats,
                      args.threads)
        print("  `randhet deploy --backend emulator` subprocess ...", flush=True)
        cli = cli_deploy(nets["dense"], tmp)
    load_end = harness.loadavg()
    total = time.perf_counter() - t_all

    print_compare(compare_rows)
    print_samples(samples)
    note = ("\n  Lava ms/sample from the difference of its two walls; emu = one batched call "
            f"of {emu_sweep[-1]} samples, {threads} torch threads; '1 thread': the emulator "
            "with 1 torch thread, ms/sample and ratio")
    print_sweep("Part 2b: scaling with depth (dense hidden layers of 64, T=16)" + note, layers)
    print_sweep("Part 2c: scaling with T (dense 64-128-10)" + note, steps)
    print_cli(cli)
    print(f"\nsetup (training {EPOCHS} epoch + export, {len(plan)} networks) {t_setup:.0f} s; "
          f"Lava imports {lava_import_s:.1f} s; first (cold) 2-sample Lava run {warm_s:.1f} s")
    print(f"load average (1/5/15 min) at start {load_start}, at end {load_end} on "
          f"{info['cpu_count']} CPUs (other jobs share them); total {total:.0f} s")

    result = {
        "benchmark": "deploy_speed", "quick": args.quick, "machine": info,
        "loadavg_start": load_start, "loadavg_end": load_end,
        "setup": {"epochs": EPOCHS, "networks": {k: {"overrides": v, "layers":
                                                      describe(nets[k]), "build_s": build_s[k]}
                                                  for k, v in plan.items()},
                  "setup_s": t_setup, "lava_import_s": lava_import_s,
                  "lava_first_run_2_samples_s": warm_s, "decay_seed": SEED},
        "target_ratio": TARGET,
        "compare": compare_rows,
        "scaling_samples": samples,
        "scaling_layers": layers,
        "scaling_timesteps": steps,
        "cli_deploy": cli,
        "total_s": total,
    }
    harness.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
