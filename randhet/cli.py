"""Command line: ``randhet train | export | import | deploy | profile | attack | compare |
flex-compare | analyze | run``.

A user mistake (bad path, bad config key, corrupt network file, bad profile) prints one line
``randhet: error: ...`` and exits with code 2; Ctrl-C exits with 130. Each command imports its
stage when it runs (torch, SLAYER and Lava take seconds to import), so ``--help`` and a
mistyped command answer at once.

Under ``torchrun`` (``torchrun --nproc-per-node N -m randhet COMMAND ...``) every process runs
the command: ``train`` and ``run`` train with DistributedDataParallel, ``attack`` and
``deploy``/``profile`` on the emulator shard their samples; rank 0 prints and writes. The other
commands refuse to run with more than one process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from randhet.allocator import keep_freed_memory
from randhet.attack.results import RobustnessResult
from randhet.attack.settings import (
    ATTACK_NAMES,
    LOSS_NAMES,
    TARGETS,
    ProtocolConfig,
    as_eps_list,
)
from randhet.config import DEPLOY_DEFAULTS, PROFILE_SAMPLES, load_config, protocol_config
from randhet.deploy.workload import inputs_help
from randhet.errors import UserError
from randhet.io import default_folder, results_folder

QUIET_HELP = "no progress bars (they show on a terminal only)"

if TYPE_CHECKING:  # the stages' result types, imported with the stages on use
    from randhet.deploy.reports import DeployReport, ProfileReport
    from randhet.experiments.results import CompareResult, FlexCompareResult
    from randhet.report.analysis import Analysis
    from randhet.train.state import TrainMetrics


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="TOML config file (e.g. configs/digits.toml)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set neuron.sigma=0.5",
    )
    _add_output_args(p, "runs/<config name>")


def _add_output_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--out", help=f"output folder (default: {default})")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _add_deploy_args(p: argparse.ArgumentParser, samples: int, backend: bool = True) -> None:
    """The network, where it runs, on which samples and draws, and where the results go."""
    p.add_argument("network", help="network.net written by 'randhet export', or a stock lava-dl "
                   "netx file (CUBA-LIF input, dense, conv and flatten layers)")
    if backend:
        p.add_argument("--backend", default=DEPLOY_DEFAULTS["backend"],
                       help="emulator (batched, bit-exact with Lava), lava (Loihi 2 "
                       "bit-accurate CPU simulator; a stock file: lava-dl's own netx network), "
                       "lava-stock or loihi2 (hardware, needs lava-loihi)")
    p.add_argument("--samples", type=int, default=samples,
                   help="number of test samples (0 = the whole test split, or all of --inputs)")
    p.add_argument("--inputs", type=Path, default=None, help=inputs_help())
    p.add_argument("--timing", default=None,
                   help="the profile's timing basis for time per step (default: the profile's; "
                   "loihi1: sanafe or davies2018)")
    p.add_argument("--profile", default=DEPLOY_DEFAULTS["profile"],
                   help="hardware profile name or TOML path")
    p.add_argument("--seed", type=int, default=DEPLOY_DEFAULTS["seed"],
                   help="seed of the per-sample decay draws")
    _add_output_args(p, "the network file's folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="randhet",
        description="RandHet spiking networks: train (lava-dl SLAYER), export (netx HDF5), "
        "deploy (Lava, Loihi 2 bit-accurate simulator).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a network from a config",
                       description="Train; writes config.toml, spec.json, network.pt (best on "
                       "validation), last.pt, checkpoint.pt (after every epoch), log.csv, "
                       "log.jsonl, training.png and metrics.json into the output folder. "
                       "Ctrl-C or SIGTERM stops after the last completed epoch (exit 130).")
    _add_config_args(p)
    p.add_argument(
        "--resume", action="store_true",
        help="continue from OUT/checkpoint.pt (same config; train.epochs may grow)",
    )

    p = sub.add_parser("export", help="write DIR/network.net (netx HDF5) for a trained run",
                       description="Export a trained run folder to a netx HDF5 file.")
    p.add_argument("run_dir", help="folder written by 'randhet train' (or, for --format nir, "
                   "a network.net)")
    p.add_argument("--out", help="output file (default: RUN_DIR/network.net or network.nir)")
    p.add_argument("--format", choices=("netx", "nir"), default="netx",
                   help="netx: Lava's HDF5 (network.net); nir: the Neuromorphic Intermediate "
                   "Representation (network.nir; the docs' NIR page: which tools run it)")
    p.add_argument("--dt", type=float, default=None,
                   help="nir: seconds per time step (default 1e-4, what snnTorch assumes)")
    p.add_argument("--draw", default=None,
                   help="nir: decays in the per-neuron arrays: mean, fixed (the frozen draw of "
                   "a resample = fixed network, its default) or a seed (default: mean)")
    p.add_argument("--pool-as", choices=("avgpool", "conv"), default=None,
                   help="nir: write pool:K as NIR's AvgPool2d (default) or as the equivalent "
                   "Conv2d, for tools that map no AvgPool2d (Norse)")
    p.add_argument("--floor-bias", action="store_true",
                   help="nir: give the first synapse of a direct-encoded network a bias that "
                   "makes up, on average, for its floor (which NIR cannot carry); randhet "
                   "imports it back out")
    p.add_argument("--randomness-off", action="store_true",
                   help="netx: write the network with sigma = 0 (the trained weights, the mean "
                   "decays, no redraws), e.g. to deploy RandHet-trained weights deterministically")

    p = sub.add_parser("import", help="build network.net from a NIR graph",
                       description="Import a NIR graph (Input, Affine/Linear, Conv2d, "
                       "SumPool2d/AvgPool2d, Flatten, CubaLIF, Output in one chain), quantize it "
                       "to Loihi's widths and write OUT/network.net, deployable with 'randhet "
                       "deploy OUT/network.net'.")
    p.add_argument("nir_file", help="network.nir")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", help="TOML config whose [data] and [encoding] the network runs "
                   "on (needed unless randhet wrote the graph)")
    p.add_argument("--dt", type=float, default=None,
                   help="seconds per time step (default: the graph's metadata, else 1e-4)")

    p = sub.add_parser("deploy", help="run an exported network and measure it",
                       description="Run test samples through the exported network on a backend; "
                       "writes deploy.json and deploy.png.")
    _add_deploy_args(p, DEPLOY_DEFAULTS["samples"])

    p = sub.add_parser("profile", help="profile an exported network on a hardware profile",
                       description="Run test samples through the bit-exact emulator with "
                       "deploy's inputs and decay draws; writes profile.json (spikes, "
                       "sparsity, SynOps, neuron updates, energy estimate per layer and in "
                       "total, float-ANN reference, resource fit) and profile.png, and prints "
                       "a table. A network that does not fit prints a warning (exit 0).")
    _add_deploy_args(p, PROFILE_SAMPLES, backend=False)

    p = sub.add_parser("attack", help="the robustness protocol on a trained run",
                       description="Attack a trained run (white-box, EOT) and score the "
                       "adversarial inputs on the float, torch, emulated and Lava networks; "
                       "writes robustness.json and robustness.png. Every setting not given "
                       "as a flag is the run's own [attack] table (its config.toml).")
    p.add_argument("run_dir", help="folder written by 'randhet train'")
    _add_attack_args(p)
    p.add_argument("--randomness-off", action="store_true",
                   help="attack the sigma = 0 twin of the run's weights (mean decays, no "
                   "draws), deployed from its own network.net; default --out: RUN_DIR/sigma0")
    _add_output_args(p, "RUN_DIR (RUN_DIR/sigma0 with --randomness-off)")

    p = sub.add_parser("compare", help="a grid of config values, each RandHet cell beside its "
                       "sigma = 0 control, over several training seeds",
                       description="Train, deploy (emulator), fit (deploy.profile) and attack the "
                       "config's network for every cell of a grid of config values and every "
                       "seed; every cell with sigma > 0 is read against its sigma = 0 control "
                       "(neuron.sigma=0,<config sigma> is added when the grid lacks it). "
                       "Writes compare.json, compare.md, compare.png; a rerun with the same "
                       "--out reuses the finished (cell, seed) results.")
    _add_config_args(p)
    p.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                   help="one grid axis (repeatable), e.g. --grid train.adv_eps=0,0.1; values "
                   "are ints, floats, true/false or strings")
    p.add_argument("--granularity", metavar="G1,G2",
                   help="shorthand for --grid neuron.granularity=G1,G2 (e.g. neuron,channel,"
                   "profile:4: granularity profile with 4 decay profiles)")
    p.add_argument("--sigmas", metavar="S1,S2",
                   help="shorthand for --grid neuron.sigma=S1,S2 (must include 0; default: "
                   "0 and the config's sigma)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")

    p = sub.add_parser("flex-compare", help="BioFlexNet's six variants, trained and attacked",
                       description="Train ANN, ANN+Flex, SNN (hybrid), SNN+Flex (hybrid), STBP "
                       "SNN and STBP SNN+Flex from a config with a flex layer (without Flex: "
                       "each flex:C[:kK] becomes conv:C:kK), run the robustness protocol of its "
                       "[attack] table on each; writes flex_compare.json, .md and .png.")
    _add_config_args(p)
    p.add_argument("--seeds", default="",
                   help="comma-separated training seeds (default: the config's seed); the "
                   "table gives mean ± std over them")

    p = sub.add_parser("analyze", help="loss landscape, Flex mask statistics, spike rasters",
                       description="Loss over a plane of filter-normalised directions, Flex "
                       "mask routing and per-layer sparsity of a trained run; writes "
                       "analysis.json, landscape.png and rasters.png.")
    p.add_argument("run_dir", help="folder written by 'randhet train'")
    p.add_argument("--samples", type=int, default=64, help="validation images used")
    p.add_argument("--grid", type=int, default=11, help="landscape points per axis")
    p.add_argument("--draws", type=int, default=1, help="fresh draws averaged per point")
    p.add_argument("--compare", nargs="*", default=[], metavar="RUN_DIR",
                   help="other runs drawn beside it in rasters.png (e.g. the plain twin)")
    p.add_argument("--out", help="output folder (default: RUN_DIR)")

    p = sub.add_parser("run", help="train, export, deploy and attack in one go",
                       description="Train, export, deploy and (if [attack] enabled) run the "
                       "robustness protocol as the config says; prints a summary.")
    _add_config_args(p)
    return parser


def _add_attack_args(p: argparse.ArgumentParser) -> None:
    """The protocol's flags; a flag not given takes the run's own ``[attack]`` table."""
    p.add_argument("--eps", help="comma-separated L-inf budgets on [0, 1] pixels, fractions "
                   "allowed (e.g. 0,1/255,2/255,4/255,8/255)")
    p.add_argument("--attacks", help=f"comma-separated: {', '.join(ATTACK_NAMES)}")
    p.add_argument("--losses", help=f"losses of the gradient members: {', '.join(LOSS_NAMES)}")
    p.add_argument("--readouts", help="scores the losses are taken on: counts (output spikes), "
                   "voltage, current (the output layer's, summed over time)")
    p.add_argument("--surrogates", help="attacker's spike surrogates: trained, "
                   "straight-through, width=W (SLAYER's exponential, W thresholds wide)")
    p.add_argument("--eot", type=int, help="fresh draws per gradient (EOT)")
    p.add_argument("--steps", type=int, help="iterations of PGD/APGD at the first budget")
    p.add_argument("--restarts", type=int, help="PGD/APGD restarts at the first budget")
    p.add_argument("--square-steps", type=int, help="Square's queries at the first budget")
    p.add_argument("--square-draws", type=int,
                   help="fresh draws each Square query averages its margin over")
    p.add_argument("--square-targets",
                   help="what Square queries: torch, emulator (the deployed integer network)")
    p.add_argument("--nes-steps", type=int,
                   help="NES's steps at the first budget (with --attacks ...,nes)")
    p.add_argument("--nes-samples", type=int,
                   help="NES's antithetic directions per step (2 queries each)")
    p.add_argument("--doublings", type=int,
                   help="budget doublings run at least (restarts, iterations, EOT in turn)")
    p.add_argument("--max-doublings", type=int,
                   help="budget doublings at most (then: 'not converged')")
    p.add_argument("--selection-draws", type=int,
                   help="fresh draws the ensemble chooses each sample's worst input on")
    p.add_argument("--draws", type=int, help="independent fresh draws to score each chosen input")
    p.add_argument("--samples", type=int, help="test samples attacked")
    p.add_argument("--batch-size", type=int, help="samples per chunk: the unit of seeding and, "
                   "under torchrun, of the work each process takes")
    p.add_argument("--target", help=f"comma-separated scoring targets: {', '.join(TARGETS)} "
                   "(torch always: the protocol's flags are computed on it)")
    p.add_argument("--seed", type=int, help="attack and scoring seed")
    p.add_argument("--transfer-from", metavar="RUN_DIR",
                   help="craft the transfer attack on this run (default: the sigma = 0 twin)")


LIST_FLAGS = ("attacks", "losses", "readouts", "surrogates", "square_targets")
INT_FLAGS = ("eot", "steps", "restarts", "square_steps", "square_draws", "nes_steps",
             "nes_samples", "doublings", "max_doublings", "selection_draws", "draws", "samples",
             "batch_size", "seed")


def _protocol_from_args(args: argparse.Namespace, run_table: dict[str, Any]) -> ProtocolConfig:
    """The run's own ``[attack]`` table (``run_table``) with the flags given on top, validated
    by the attack package's own rules (a bad value is named by its flag)."""

    def items(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    flags: dict[str, Any] = {}
    if args.eps is not None:
        try:
            flags["eps"] = list(as_eps_list(args.eps))
        except (ValueError, ZeroDivisionError) as exc:
            raise UserError(f"--eps {args.eps!r}: {exc}") from None
    if args.target is not None:
        flags["targets"] = items(args.target)
    flags.update({k: items(getattr(args, k)) for k in LIST_FLAGS
                  if getattr(args, k) is not None})
    flags.update({k: getattr(args, k) for k in INT_FLAGS if getattr(args, k) is not None})

    def name(key: str) -> str:
        if key not in flags:
            return f"'attack.{key}' (the run's config)"
        return "--target" if key == "targets" else "--" + key.replace("_", "-")

    table = {**{k: v for k, v in run_table.items() if k != "enabled"}, **flags}
    return ProtocolConfig.from_table(table, name=name)


def _out_dir(args: argparse.Namespace, cfg: dict[str, Any]) -> Path:
    return results_folder(args.out, default_folder(cfg["name"]))


def cmd_train(args: argparse.Namespace) -> TrainMetrics:
    """Train from ``--config``/``--set``."""
    from randhet.train.trainer import train  # the stage, on use

    cfg = load_config(args.config, args.overrides)
    out = _out_dir(args, cfg)
    metrics = train(cfg, out, progress=not args.quiet, resume=getattr(args, "resume", False))
    print(f"trained: best validation accuracy {metrics.best_val_accuracy:.4f} "
          f"(epoch {metrics.best_epoch}) -> {out}")
    return {"cfg": cfg, "out": out, "metrics": metrics}


def cmd_export(args: argparse.Namespace) -> Path:
    from randhet.export import export_run  # the stage, on use

    if args.format == "nir":
        if args.randomness_off:
            raise UserError("--randomness-off applies to netx files (--format nir: --draw mean)")
        from randhet.export.nir_export import export_nir  # the stage, on use
        from randhet.export.nir_mapping import DEFAULT_DT, parse_draw  # the stage, on use

        dt = DEFAULT_DT if args.dt is None else args.dt
        path = export_nir(args.run_dir, args.out, dt, parse_draw(args.draw),
                          args.pool_as or "avgpool", args.floor_bias)
        print(f"exported: {path} (NIR, dt = {dt:g} s)")
        return path
    if (args.dt is not None or args.draw is not None or args.pool_as is not None
            or args.floor_bias):
        raise UserError("--dt, --draw, --pool-as and --floor-bias apply to --format nir only")
    path = export_run(args.run_dir, args.out, randomness_off=args.randomness_off)
    print(f"exported: {path}" + (" (randomness off: sigma = 0)" if args.randomness_off else ""))
    return path


def cmd_import(args: argparse.Namespace) -> Path:
    from randhet.export.nir_import import import_nir  # the stage, on use

    path, report = import_nir(args.nir_file, args.out, args.config, args.dt)
    how = "exact" if report.exact else f"max weight error {report.max_weight_error:.3g} x vth"
    print(f"imported: {path} (vThMant {report.threshold_mant}, {how})")
    return path


def cmd_deploy(args: argparse.Namespace) -> DeployReport:
    from randhet.deploy.pipeline import deploy  # the stage, on use

    report = deploy(
        args.network, backend=args.backend, samples=args.samples, profile=args.profile,
        seed=args.seed, out_dir=args.out, progress=not args.quiet, inputs=args.inputs,
        timing=args.timing,
    )
    checks = [f"{name} {value:.3f}" for name, value in (
        ("bit exact fraction", report.bit_exact_fraction),
        ("emulator bit exact fraction",
         None if report.check is None else report.check.emulator_bit_exact_fraction))
        if value is not None]
    print(f"deployed on {report.backend}: {_accuracy(report.accuracy)} over {report.samples} "
          f"samples ({report.workload})" + "".join(f", {c}" for c in checks))
    writes = None if report.check is None else report.check.host_writes_per_sample
    if writes:
        print(f"host writes per sample: {writes['decay_registers']} decay registers, "
              f"{writes['state_resets']} state resets")
    return report


def _accuracy(accuracy: float | None) -> str:
    if accuracy is None:
        return "no accuracy (no labels)"
    return f"accuracy {accuracy:.4f}"


def cmd_profile(args: argparse.Namespace) -> ProfileReport:
    from randhet.deploy.pipeline import run_profile  # the stage, on use
    from randhet.deploy.profiling import profile_table  # the stage, on use

    report = run_profile(args.network, samples=args.samples, profile=args.profile,
                         seed=args.seed, out_dir=args.out, progress=not args.quiet,
                         inputs=args.inputs, timing=args.timing)
    cost = report.cost
    print(f"profiled {report.network} on {report.profile} ({report.samples} samples, "
          f"emulator, seed {report.seed}, T = {report.timesteps}; {report.workload}):")
    print(profile_table(cost))
    if not cost.fit.fits:
        print(f"randhet: warning: the network {cost.fit.summary()}", file=sys.stderr)
    out = results_folder(args.out, Path(report.network).parent)
    print(f"results: {out}/profile.json, {out}/profile.png")
    return report


def cmd_attack(args: argparse.Namespace) -> RobustnessResult:
    from randhet.attack.run import attack_folder, attack_run  # the stage, on use
    from randhet.runs import open_run  # the stage, on use

    run_table = open_run(args.run_dir).config.get("attack", {})
    result = attack_run(args.run_dir, _protocol_from_args(args, run_table), args.out,
                        progress=not args.quiet, transfer_from=args.transfer_from,
                        randomness_off=args.randomness_off)
    print("\n".join(result.summary))
    out = attack_folder(args.run_dir, args.out, args.randomness_off)
    print(f"results: {out}/robustness.json, {out}/robustness.png")
    return result


def _seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: comma-separated training seeds, each >= 0 (may be empty)."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers") from None
    if any(s < 0 for s in seeds):
        raise UserError(f"--seeds {text!r}: every training seed must be >= 0")
    return seeds


def cmd_compare(args: argparse.Namespace) -> CompareResult:
    from randhet.experiments.compare import (  # the stage, on use
        GRANULARITY,
        SIGMA,
        compare,
        markdown_table,
        parse_grid_arg,
    )

    cfg = load_config(args.config, args.overrides)
    grid = [parse_grid_arg(text) for text in args.grid]
    for key, value in ((GRANULARITY, args.granularity), (SIGMA, args.sigmas)):
        if value is not None:
            grid.append(parse_grid_arg(f"{key}={value}"))
    seeds = list(_seeds(args.seeds))
    if not seeds:
        raise UserError("--seeds needs at least one training seed, each >= 0")
    out = results_folder(args.out, default_folder(cfg["name"], "compare"))
    result = compare(cfg, grid, seeds, protocol_config(cfg), out, progress=not args.quiet)
    print(markdown_table(result))
    print(f"results: {out}/compare.json, {out}/compare.md, {out}/compare.png")
    return result


def cmd_flex_compare(args: argparse.Namespace) -> FlexCompareResult:
    from randhet.experiments.flex_compare import flex_compare, markdown_table  # the stage, on use

    cfg = load_config(args.config, args.overrides)
    seeds = _seeds(args.seeds)
    out = results_folder(args.out, default_folder(cfg["name"], "flex-compare"))
    result = flex_compare(cfg, protocol_config(cfg), out, progress=not args.quiet, seeds=seeds)
    print(markdown_table(result))
    print(f"results: {out}/flex_compare.json, {out}/flex_compare.md, {out}/flex_compare.png")
    return result


def cmd_analyze(args: argparse.Namespace) -> Analysis:
    from randhet.report.analysis import analyze_run  # the stage, on use

    if args.samples < 1 or args.grid < 2 or args.draws < 1:
        raise UserError("--samples and --draws must be >= 1, --grid >= 2")
    result = analyze_run(args.run_dir, args.out, samples=args.samples, grid=args.grid,
                         draws=args.draws, compare=args.compare)
    out = results_folder(args.out, args.run_dir)
    print(f"analysis: {out}/analysis.json, {out}/landscape.png, {out}/rasters.png")
    return result


def cmd_run(args: argparse.Namespace) -> None:
    from randhet.experiments.pipeline import run_pipeline  # the stage, on use

    cfg = load_config(args.config, args.overrides)
    out = _out_dir(args, cfg)
    run_pipeline(cfg, out, progress=not args.quiet)


COMMANDS = {
    "train": cmd_train, "export": cmd_export, "deploy": cmd_deploy, "profile": cmd_profile,
    "attack": cmd_attack, "analyze": cmd_analyze, "compare": cmd_compare,
    "flex-compare": cmd_flex_compare, "run": cmd_run, "import": cmd_import,
}


DISTRIBUTED = {"train", "run", "attack", "deploy", "profile"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from randhet import distributed  # imports torch: after parsing, so --help stays quick
    keep_freed_memory()  # the process is randhet's: keep freed memory for reuse

    try:
        with distributed.session() as world:
            if world.distributed and args.command not in DISTRIBUTED:
                distributed.refuse(f"'randhet {args.command}'")
            if not world.main and hasattr(args, "quiet"):
                args.quiet = True  # one set of progress bars: rank 0's
            COMMANDS[args.command](args)
    except UserError as exc:
        print(f"randhet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("randhet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
