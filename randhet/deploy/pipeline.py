"""Deploy an exported network on a backend and measure it as deployed.

Every test sample gets its own fresh decay draw (seeded by ``seed``), exactly as the trained
network draws them. The same inputs and draws go through the torch (SLAYER) model, so each
sample's spike rasters can be checked bit for bit against the deployed network. Accuracy,
sparsity, synaptic operations and energy (:mod:`randhet.deploy.profiling`) and the resource fit
(:mod:`randhet.deploy.fit`) are computed from what the deployed network did. :func:`run_profile`
prepares the same inputs and draws (:func:`prepare`) and measures them on the emulator.

Under torchrun the emulator backend (deploy and profile) is sharded: every rank prepares the
same inputs and draws, runs its contiguous share of the samples, and all ranks gather the whole;
rank 0 writes the report, which equals a single-process run's (``wall_seconds`` aside).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from randhet import distributed as dist
from randhet.config import BACKENDS, DEPLOY_DEFAULTS, PROFILE_SAMPLES
from randhet.data import load_dataset
from randhet.decays import DecayDraw, deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.fit import check_fit
from randhet.deploy.profiling import measure
from randhet.deploy.reference import reference_rasters
from randhet.deploy.reports import (
    ChipCost,
    ChipReport,
    DecayDrawRecord,
    Decided,
    DeployReport,
    EmulatorCheck,
    LayerEvents,
    ProfileReport,
)
from randhet.deploy.result import RunResult
from randhet.deploy.timing import step_times
from randhet.deploy.workload import stock_workload
from randhet.errors import UserError
from randhet.hardware import Arithmetic, HardwareProfile, load_profile
from randhet.io import library_versions, results_folder, write_json
from randhet.layer_tokens import layer_names
from randhet.loihi import LAVA, Datapath
from randhet.models.exported import encode_integers, model_from_export
from randhet.models.spiking import SpikingNetwork
from randhet.network import ExportedNetwork, read_network
from randhet.plots import CoreTimes, LayerBars, plot_deploy, plot_profile
from randhet.readout import DECISION_RULE, Decisions, decide


@dataclass(frozen=True)
class Prepared:
    """What a deployment runs: the network, its integer test inputs and per-sample decays."""

    net: ExportedNetwork
    profile: HardwareProfile
    model: SpikingNetwork | None  # the torch reference with the file's integers (None: stock)
    inputs: np.ndarray  # int64 [S, *input, T]
    draws: list[DecayDraw]  # per spiking layer
    labels: np.ndarray | None  # int64 [S] (None: a workload without labels)
    workload: str  # where the inputs came from
    stock: bool = False  # run by stock Lava processes: Lava's datapath whatever the profile
    timing: str | None = None  # the profile's timing basis (None: its default)

    @property
    def samples(self) -> int:
        return len(self.inputs)

    @property
    def datapath(self) -> Datapath:
        """The overflow rules every backend runs: the profile's chip, or Lava's."""
        return LAVA if self.stock else self.profile.datapath()

    @cached_property
    def watch(self) -> tuple[Arithmetic, dict[str, str]]:
        """What chip events are counted against, and each field's source (read once)."""
        return self.profile.watch()

    def emulate(self, inputs: np.ndarray, draws: list[DecayDraw],
                on_progress: Any = None) -> RunResult:
        """The emulator on this profile's datapath, counting chip events."""
        return emulate(self.net, inputs, draws, on_progress=on_progress,
                       datapath=self.datapath, watch=self.watch[0])


def prepare(network_path: str | Path, *, samples: int, profile: str, seed: int,
            inputs: str | Path | None = None, timing: str | None = None) -> Prepared:
    """Load the profile and network, encode the first ``samples`` test samples (0 = all) and
    draw their decays from ``seed``. A stock netx file takes ``inputs`` (a .npy file) or a
    synthetic workload (:mod:`randhet.deploy.workload`). Raises UserError for a bad profile,
    file or count."""
    hw = load_profile(profile)  # fail early on a bad profile or timing basis
    hw.timing_basis(timing)
    net = read_network(network_path)
    if net.stock:
        work = stock_workload(net, inputs, samples, seed)
        n = len(work.inputs)
        return Prepared(net, hw, None, work.inputs, deployment_draws(net, n, seed), None,
                        work.source, timing=timing)
    if inputs is not None:
        raise UserError("--inputs is for stock netx files; randhet's files deploy their data "
                        "set's test split")
    data = load_dataset(net.data, timesteps=net.spec.encoding.timesteps)
    available = len(data.x_test)
    if samples < 0 or samples > available:
        raise UserError(f"--samples {samples}: the test split has {available} samples")
    n = samples or available
    model = model_from_export(net)
    inputs = encode_integers(model, torch.as_tensor(data.x_test[:n]), seed)
    return Prepared(net, hw, model, inputs, deployment_draws(net, n, seed), data.y_test[:n],
                    f"the test split of {net.data.get('dataset', 'the data set')}",
                    timing=timing)


def emulate_sharded(
    prep: Prepared, on_progress: Any = None, reference: bool = True
) -> tuple[RunResult, list[np.ndarray] | None]:
    """Emulator result and (``reference``) torch reference rasters of every prepared sample.

    Each rank computes its contiguous share (all of them in a single process); every rank gets
    the whole, in sample order."""
    part = dist.shard(prep.samples)
    draws = [DecayDraw(d.current[part], d.voltage[part]) for d in prep.draws]
    result = prep.emulate(prep.inputs[part], draws, on_progress)
    reference = reference and prep.model is not None
    ref = reference_rasters(prep.model, prep.inputs[part], draws) if reference else None
    if not dist.world().distributed:
        return result, ref
    pieces = dist.all_gather((result, ref))
    whole = RunResult.concat([p[0] for p in pieces])
    if not reference:
        return whole, None
    return whole, [np.concatenate(layer) for layer in zip(*(p[1] for p in pieces), strict=True)]


def _matching(a: list[np.ndarray], b: list[np.ndarray], n: int) -> np.ndarray:
    """Per sample: True where every layer's raster is identical."""
    ok = np.ones(n, dtype=bool)
    for x, y in zip(a, b, strict=True):
        ok &= (x == y).reshape(n, -1).all(axis=1)
    return ok


def deploy(
    network_path: str | Path,
    *,
    backend: str = DEPLOY_DEFAULTS["backend"],
    samples: int = DEPLOY_DEFAULTS["samples"],
    profile: str = DEPLOY_DEFAULTS["profile"],
    seed: int = DEPLOY_DEFAULTS["seed"],
    out_dir: str | Path | None = None,
    progress: bool = True,
    inputs: str | Path | None = None,
    timing: str | None = None,
) -> DeployReport:
    """Run ``samples`` test samples (0 = the whole test split) on ``backend`` and write
    ``deploy.json`` (and ``deploy.png``); the report, typed. A stock netx file runs ``inputs``
    (.npy) or a synthetic workload; its ``lava`` backend is lava-dl's own netx network
    (:mod:`randhet.deploy.lava_netx`)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    if backend != "emulator":
        dist.refuse(f"'randhet deploy --backend {backend}'")
    prep = prepare(network_path, samples=samples, profile=profile, seed=seed, inputs=inputs,
                   timing=timing)
    if prep.net.stock and backend not in ("emulator", "lava"):
        raise UserError(f"--backend {backend} runs randhet's files; a stock netx file deploys "
                        "on the emulator or on lava (lava-dl's own netx network)")
    net, inputs, draws, n = prep.net, prep.inputs, prep.draws, prep.samples
    out = results_folder(out_dir, net.path.parent)
    if dist.world().main:
        out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    bar_off = None if progress else True  # None: shown on a terminal only
    share = dist.shard(n) if backend == "emulator" else slice(0, n)  # this rank's samples
    with tqdm(total=share.stop - share.start, desc=f"deploy ({backend})", unit="sample",
              disable=bar_off) as bar:
        def progress_fn(k: int) -> None:
            bar.update(k - bar.n)

        ref = None
        if backend == "emulator":
            result, ref = emulate_sharded(prep, progress_fn)
        elif backend == "lava" and net.stock:
            from randhet.deploy.lava_netx import run_netx_lava  # Lava: imported on first use

            result = run_netx_lava(net, inputs, on_progress=progress_fn)
        elif backend == "lava":
            from randhet.deploy.lava_backend import run_lava  # Lava: imported on first use

            result = run_lava(net, inputs, draws, on_progress=progress_fn,
                              datapath=prep.datapath)
        elif backend == "lava-stock":
            from randhet.deploy.lava_stock import run_lava_stock  # Lava: on first use

            result, stock_writes = run_lava_stock(net, inputs, draws, on_progress=progress_fn)
        else:
            from randhet.deploy.loihi2_backend import run_loihi2  # Lava: on first use

            result, stock_writes = run_loihi2(net, inputs, draws)
    wall = time.perf_counter() - t0
    if ref is None and prep.model is not None:
        ref = reference_rasters(prep.model, inputs, draws)
    check = None
    events = result.events
    if backend == "lava-stock" and not prep.datapath.is_lava:
        # stock LIF runs Lava's datapath: the emulator follows it, and the report says so
        prep = replace(prep, stock=True)
    matched = None if ref is None else _matching(ref, result.rasters, n)
    if backend != "emulator":  # the emulator must agree with the deployment it stands in for
        em = prep.emulate(inputs, draws)
        events = em.events
        agree = _matching(em.rasters, result.rasters, n)
        check = EmulatorCheck(float(agree.mean()))
        if backend in ("lava-stock", "loihi2") or net.stock:  # stock LIF counts no updates
            result = replace(result, active_steps=em.active_steps)
            check = replace(
                check, host_writes_per_sample=None if net.stock else stock_writes,
                neuron_updates_source="the emulator (stock LIF counts none; its rasters equal "
                f"the emulator's in {int(agree.sum())} of {n} samples, and equal rasters mean "
                "equal states)")
    neuron = net.spec.neuron
    report = DeployReport(
        backend=backend,
        network=str(net.path),
        samples=n,
        workload=prep.workload,
        decided=_decisions(result.rasters, prep.labels),
        reference_accuracy=(None if ref is None or prep.labels is None
                            else Decisions.of(decide(ref[-1].sum(-1)), prep.labels).accuracy),
        bit_exact_fraction=None if matched is None else float(matched.mean()),
        bit_exact_definition=(
            "fraction of samples whose spike rasters in every layer equal the torch (SLAYER) "
            "model's for the same inputs and decay draw" if matched is not None else
            "not applicable: a stock netx file has no torch model in randhet; see "
            "emulator_bit_exact_fraction for the Lava backend"
        ),
        check=check,
        timesteps=int(inputs.shape[-1]),
        decay_draw=DecayDrawRecord(
            seed=seed, sigma=neuron.sigma, randomize=neuron.randomize,
            distribution=neuron.distribution, granularity=neuron.granularity,
            resample=neuron.resample,
            distinct_current_decays_layer0=int(np.unique(draws[0].current.numpy()).size)),
        profile=profile,
        cost=_cost(prep, inputs, result, wall, events),
    )
    _write(report, result, out / "deploy.json")
    return report


def _decisions(rasters: list[np.ndarray], labels: np.ndarray | None) -> Decided:
    """Accuracy, tie and silent rates of the output layer's counts (None without labels)."""
    if labels is None:
        return Decided(None, None, None, "not applicable: the workload has no labels")
    decided = Decisions.of(decide(rasters[-1].sum(-1)), labels)
    return Decided(decided.accuracy, decided.tie_rate, decided.silent_rate, DECISION_RULE)


def chip_report(prep: Prepared, events: list[dict[str, int]] | None) -> ChipReport:
    """The datapath run, what it is watched against (and why) and the events per layer."""
    watch, source = prep.watch
    datapath = prep.datapath
    return ChipReport(
        synaptic_input_bits=datapath.synaptic_input_bits,
        current_wrap=datapath.current_wrap,
        applied=_applied(prep),
        watched=watch,
        watched_source=dict(source),
        events=tuple(LayerEvents(name, dict(ev)) for name, ev in
                     zip(layer_names(prep.net.spec), events or [], strict=False)),
        events_definition=(
            "per layer: (sample, neuron, step) entries of the summed synaptic input a << 6 "
            "beyond the watched signed width, and of u at exactly +-2**23 (where Lava's "
            "one-sided wrap and a 24-bit register differ); drawn decay values outside the "
            "watched register ranges. Where the datapath applied is the chip's, these are "
            "what it did; where it is Lava's, they are where a chip could differ."),
    )


def _applied(prep: Prepared) -> str:
    """Whose datapath the deployment ran, and why."""
    if not prep.datapath.is_lava:
        return f"{prep.profile.name}'s datapath"
    if prep.stock and not prep.profile.datapath().is_lava:
        return (f"Lava's CPU semantics: stock Lava LIF cannot run {prep.profile.name}'s "
                "datapath; the events show where that chip could differ")
    return "Lava's CPU semantics: the profile does not know the chip's datapath"


def _cost(prep: Prepared, inputs: np.ndarray, result: RunResult, wall: float,
          events: list[dict[str, int]] | None) -> ChipCost:
    """The measurements, chip events, resource fit, timing and versions of a run."""
    activity = measure(prep.net, inputs, result, prep.profile)
    fit = check_fit(prep.net, prep.profile, prep.draws)
    timing = step_times(prep.net, inputs, result, fit, prep.profile,
                        activity.energy.joules_per_sample, prep.timing)
    missing = None if timing is not None else (
        f"profile {prep.profile.name} has no [timing] basis" if not prep.profile.timing
        else "the network does not fit the chip")
    return ChipCost(activity=activity, chip=chip_report(prep, events), fit=fit, timing=timing,
                    timing_missing=missing, wall_seconds=wall, processes=dist.world().size,
                    versions=library_versions())


def _write(report: DeployReport | ProfileReport, result: RunResult, path: Path) -> None:
    """The report's JSON and its plot (raster of the first sample beside it, same name with
    .png), on the main process."""
    if not dist.world().main:
        return
    write_json(path, report.to_dict())
    activity, timing = report.cost.activity, report.cost.timing
    rasters = [r[0] for r in result.rasters]
    bars = [LayerBars(ly.name, ly.activation_sparsity, ly.synops_effective, ly.synops_dense)
            for ly in activity.layers]
    energy = activity.energy.joules_per_sample * 1e6
    png = path.with_suffix(".png")
    if isinstance(report, DeployReport):
        acc = "no labels" if report.accuracy is None else f"accuracy {report.accuracy:.3f}"
        plot_deploy(rasters, bars, f"{report.backend}: {acc}, {energy:.2f} uJ/sample (est.)",
                    png)
        return
    cores = [] if timing is None else [CoreTimes(ly.name, ly.neuron_side_s, ly.message_side_s)
                                       for ly in timing.layers]
    plot_profile(rasters, bars,
                 f"{report.samples} samples, overall {activity.activation_sparsity:.3f}",
                 f"{report.profile}: {energy:.3f} uJ/sample (est.)", cores,
                 None if timing is None else timing.time_per_step_s, png)


def run_profile(
    network_path: str | Path,
    *,
    samples: int = PROFILE_SAMPLES,
    profile: str = DEPLOY_DEFAULTS["profile"],
    seed: int = DEPLOY_DEFAULTS["seed"],
    out_dir: str | Path | None = None,
    progress: bool = True,
    inputs: str | Path | None = None,
    timing: str | None = None,
) -> ProfileReport:
    """Profile a network on the emulator with deploy's inputs and draws for ``samples`` test
    samples (0 = all; a stock netx file: ``inputs`` or a synthetic workload): activity, SynOps,
    energy, ANN reference and resource fit. Writes ``profile.json`` and ``profile.png``
    (default: next to the network file)."""
    prep = prepare(network_path, samples=samples, profile=profile, seed=seed, inputs=inputs,
                   timing=timing)
    net = prep.net
    out = results_folder(out_dir, net.path.parent)
    if dist.world().main:
        out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    share = dist.shard(prep.samples)
    with tqdm(total=share.stop - share.start, desc="profile (emulator)", unit="sample",
              disable=None if progress else True) as bar:
        result, _ = emulate_sharded(prep, lambda k: bar.update(k - bar.n), reference=False)
    wall = time.perf_counter() - t0
    report = ProfileReport(
        network=str(net.path),
        samples=prep.samples,
        workload=prep.workload,
        seed=seed,
        timesteps=int(prep.inputs.shape[-1]),
        decided=_decisions(result.rasters, prep.labels),
        profile=prep.profile.name,
        profile_path=str(prep.profile.path),
        profile_description=prep.profile.description,
        cost=_cost(prep, prep.inputs, result, wall, result.events),
    )
    _write(report, result, out / "profile.json")
    return report
