"""Command line: ``randhet train | export | import | deploy | profile | run``.

A user mistake (bad path, bad config key, corrupt network file, bad profile) prints one line
``randhet: error: ...`` and exits with code 2; Ctrl-C exits with 130.

Under ``torchrun`` (``torchrun --nproc-per-node N -m randhet COMMAND ...``) every process runs
the command: ``train`` and ``run`` train with DistributedDataParallel, ``attack`` and
``deploy``/``profile`` on the emulator shard their samples; rank 0 prints and writes. The other
commands refuse to run with more than one process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from randhet.config import DEFAULTS
from randhet.errors import UserError

QUIET_HELP = "no progress bars (they show on a terminal only)"


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="TOML config file (e.g. configs/digits.toml)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set neuron.sigma=0.5",
    )
    p.add_argument("--out", help="output folder (default: runs/<config name>)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _add_deploy_args(p: argparse.ArgumentParser, with_defaults: bool) -> None:
    d: dict[str, Any] = {"backend": "lava", "samples": 0, "profile": "loihi2", "seed": 1}
    if not with_defaults:
        d = dict.fromkeys(d)
    p.add_argument(
        "--backend", default=d["backend"],
        help="emulator (batched, bit-exact with Lava), lava (Loihi 2 bit-accurate CPU "
        "simulator) or loihi2 (hardware, needs lava-loihi)",
    )
    p.add_argument(
        "--samples", type=int, default=d["samples"],
        help="number of test samples (0 = the whole test split)",
    )
    p.add_argument("--profile", default=d["profile"], help="hardware profile name or TOML path")
    p.add_argument("--seed", type=int, default=d["seed"], help="seed of the per-sample decay draws")


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
                   "Representation (network.nir, for snnTorch, Norse, Rockpool, ...)")
    p.add_argument("--dt", type=float, default=None,
                   help="nir: seconds per time step (default 1e-4, what snnTorch assumes)")
    p.add_argument("--draw", default=None,
                   help="nir: decays in the per-neuron arrays: mean, fixed (the frozen draw of "
                   "a resample = fixed network, its default) or a seed (default: mean)")

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
    p.add_argument("network", help="network.net written by 'randhet export'")
    _add_deploy_args(p, with_defaults=True)
    p.add_argument("--out", help="output folder (default: the network file's folder)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    p = sub.add_parser("profile", help="profile an exported network on a hardware profile",
                       description="Run test samples through the bit-exact emulator with "
                       "deploy's inputs and decay draws; writes profile.json (spikes, "
                       "sparsity, SynOps, neuron updates, energy estimate per layer and in "
                       "total, float-ANN reference, resource fit) and profile.png, and prints "
                       "a table. A network that does not fit prints a warning (exit 0).")
    p.add_argument("network", help="network.net written by 'randhet export'")
    p.add_argument("--profile", default="loihi2", help="hardware profile name or TOML path")
    p.add_argument("--samples", type=int, default=100,
                   help="number of test samples (0 = the whole test split)")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-sample decay draws")
    p.add_argument("--out", help="output folder (default: the network file's folder)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    p = sub.add_parser("attack", help="the robustness protocol on a trained run",
                       description="Attack a trained run (white-box, EOT) and score the "
                       "adversarial inputs on the float, torch, emulated and Lava networks; "
                       "writes robustness.json and robustness.png.")
    p.add_argument("run_dir", help="folder written by 'randhet train'")
    _add_attack_args(p)
    p.add_argument("--out", help="output folder (default: RUN_DIR)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    p = sub.add_parser("compare", help="sigma = 0 vs RandHet over several training seeds",
                       description="Train, deploy (emulator) and attack the config's network "
                       "for every sigma and seed; writes compare.json, compare.md, compare.png.")
    _add_config_args(p)
    p.add_argument("--sigmas", default="0,1", help="comma-separated sigma values")
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
    d = DEFAULTS["attack"]
    p.add_argument("--eps", default=",".join(f"{e:g}" for e in d["eps"]),
                   help="comma-separated L-inf budgets on [0, 1] pixels, fractions allowed "
                   "(e.g. 0,1/255,2/255,4/255,8/255)")
    p.add_argument("--attacks", default=",".join(d["attacks"]),
                   help="comma-separated: fgsm, pgd, apgd, pgd_large_eps, noise")
    p.add_argument("--eot", type=int, default=d["eot"], help="fresh draws per gradient (EOT)")
    p.add_argument("--steps", type=int, default=d["steps"], help="iterations of PGD/APGD")
    p.add_argument("--restarts", type=int, default=d["restarts"], help="PGD/APGD restarts")
    p.add_argument("--draws", type=int, default=d["draws"],
                   help="fresh draws to score each adversarial input")
    p.add_argument("--samples", type=int, default=d["samples"], help="test samples attacked")
    p.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help="samples per chunk: the unit of seeding and, under torchrun, of the "
                   "work each process takes")
    p.add_argument("--target", default=",".join(d["targets"]),
                   help="comma-separated scoring targets: float, torch, emulator, lava")
    p.add_argument("--surrogate-tau", type=float, default=None,
                   help="attacker's surrogate width (relative to threshold; default as trained)")
    p.add_argument("--seed", type=int, default=d["seed"], help="attack and scoring seed")
    p.add_argument("--transfer-from", metavar="RUN_DIR",
                   help="craft the transfer attack on this run (default: the sigma = 0 twin)")


def _protocol_from_args(args: argparse.Namespace) -> Any:
    from randhet.attack.protocol import ProtocolConfig, as_eps_list

    try:
        eps = as_eps_list(args.eps)
    except (ValueError, ZeroDivisionError) as exc:
        raise UserError(f"--eps {args.eps!r}: {exc}") from None
    for name in ("eot", "steps", "restarts", "draws", "samples", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    targets = tuple(t.strip() for t in args.target.split(",") if t.strip())
    if "torch" not in targets:
        targets = ("torch", *targets)
    return ProtocolConfig(
        eps=eps, attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()),
        eot=args.eot, steps=args.steps, restarts=args.restarts, draws=args.draws,
        samples=args.samples, batch_size=args.batch_size, targets=targets,
        surrogate_tau=args.surrogate_tau,
        seed=args.seed,
    )


def _out_dir(args: argparse.Namespace, cfg: dict[str, Any]) -> Path:
    return Path(args.out) if args.out else Path("runs") / cfg["name"]


def cmd_train(args: argparse.Namespace, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train from ``--config``/``--set`` (or the already resolved ``cfg``)."""
    from randhet.config import load_config
    from randhet.train.trainer import train

    cfg = cfg if cfg is not None else load_config(args.config, args.overrides)
    out = _out_dir(args, cfg)
    metrics = train(cfg, out, progress=not args.quiet, resume=getattr(args, "resume", False))
    print(f"trained: best validation accuracy {metrics['best_val_accuracy']:.4f} "
          f"(epoch {metrics['best_epoch']}) -> {out}")
    return {"cfg": cfg, "out": out, "metrics": metrics}


def cmd_export(args: argparse.Namespace) -> Path:
    from randhet.export import export_run

    if args.format == "nir":
        from randhet.export.nir_export import export_nir
        from randhet.export.nir_mapping import DEFAULT_DT, parse_draw

        dt = DEFAULT_DT if args.dt is None else args.dt
        path = export_nir(args.run_dir, args.out, dt, parse_draw(args.draw))
        print(f"exported: {path} (NIR, dt = {dt:g} s)")
        return path
    if args.dt is not None or args.draw is not None:
        raise UserError("--dt and --draw apply to --format nir only")
    path = export_run(args.run_dir, args.out)
    print(f"exported: {path}")
    return path


def cmd_import(args: argparse.Namespace) -> Path:
    from randhet.export.nir_import import import_nir

    path, report = import_nir(args.nir_file, args.out, args.config, args.dt)
    how = "exact" if report.exact else f"max weight error {report.max_weight_error:.3g} x vth"
    print(f"imported: {path} (vThMant {report.threshold_mant}, {how})")
    return path


def cmd_deploy(args: argparse.Namespace) -> dict[str, Any]:
    from randhet.deploy.pipeline import deploy

    report = deploy(
        args.network, backend=args.backend, samples=args.samples, profile=args.profile,
        seed=args.seed, out_dir=args.out, progress=not args.quiet,
    )
    print(
        f"deployed on {report['backend']}: accuracy {report['accuracy']:.4f} over "
        f"{report['samples']} samples, bit-exact fraction {report['bit_exact_fraction']:.3f}"
    )
    return report


def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from randhet.deploy.pipeline import run_profile
    from randhet.deploy.profiling import profile_table

    report = run_profile(args.network, samples=args.samples, profile=args.profile,
                         seed=args.seed, out_dir=args.out, progress=not args.quiet)
    print(f"profiled {report['network']} on {report['profile']} ({report['samples']} samples, "
          f"emulator, seed {report['seed']}, T = {report['timesteps']}):")
    print(profile_table(report))
    if not report["resources"]["fits"]:
        print(f"randhet: warning: the network {report['resources']['summary']}",
              file=sys.stderr)
    out = Path(args.out) if args.out else Path(args.network).parent
    print(f"results: {out}/profile.json, {out}/profile.png")
    return report


def cmd_attack(args: argparse.Namespace) -> dict[str, Any]:
    from randhet.attack.run import attack_run

    result = attack_run(args.run_dir, _protocol_from_args(args), args.out,
                        progress=not args.quiet, transfer_from=args.transfer_from)
    print("\n".join(result["summary"]))
    out = Path(args.out) if args.out else Path(args.run_dir)
    print(f"results: {out}/robustness.json, {out}/robustness.png")
    return result


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    from randhet.attack.compare import compare
    from randhet.config import load_config, protocol_config

    cfg = load_config(args.config, args.overrides)
    try:
        sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError("--sigmas takes numbers and --seeds integers, comma-separated") from None
    if not sigmas or not seeds or any(s < 0 for s in sigmas):
        raise UserError("--sigmas (>= 0) and --seeds need at least one value each")
    out = Path(args.out) if args.out else Path("runs") / f"{cfg['name']}-compare"
    result = compare(cfg, sigmas, seeds, protocol_config(cfg), out, progress=not args.quiet)
    from randhet.attack.compare import markdown_table

    print(markdown_table(result))
    print(f"results: {out}/compare.json, {out}/compare.md, {out}/compare.png")
    return result


def cmd_flex_compare(args: argparse.Namespace) -> dict[str, Any]:
    from randhet.attack.flex_compare import flex_compare, markdown_table
    from randhet.config import load_config, protocol_config

    cfg = load_config(args.config, args.overrides)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    out = Path(args.out) if args.out else Path("runs") / f"{cfg['name']}-flex-compare"
    result = flex_compare(cfg, protocol_config(cfg), out, progress=not args.quiet, seeds=seeds)
    print(markdown_table(result))
    print(f"results: {out}/flex_compare.json, {out}/flex_compare.md, {out}/flex_compare.png")
    return result


def cmd_analyze(args: argparse.Namespace) -> dict[str, Any]:
    from randhet.report.analysis import analyze_run

    if args.samples < 1 or args.grid < 2 or args.draws < 1:
        raise UserError("--samples and --draws must be >= 1, --grid >= 2")
    result = analyze_run(args.run_dir, args.out, samples=args.samples, grid=args.grid,
                         draws=args.draws, compare=args.compare)
    out = Path(args.out) if args.out else Path(args.run_dir)
    print(f"analysis: {out}/analysis.json, {out}/landscape.png, {out}/rasters.png")
    return result


def summary_table(train_metrics: dict[str, Any], report: dict[str, Any]) -> str:
    """A short plain-text summary of a whole run."""
    e = report["energy"]
    rows = [
        ("validation accuracy (torch, best epoch)", f"{train_metrics['best_val_accuracy']:.4f}"),
        (f"test accuracy ({report['backend']}, {report['samples']} samples)",
         f"{report['accuracy']:.4f}"),
        ("test accuracy (torch model, same draws)", f"{report['reference_accuracy']:.4f}"),
        ("bit-exact fraction (deployed vs torch)", f"{report['bit_exact_fraction']:.4f}"),
        ("activation sparsity", f"{report['activation_sparsity']:.4f}"),
        ("synaptic ops / sample (effective)", f"{report['synops']['effective']:.0f}"),
        ("synaptic ops / sample (dense)", f"{report['synops']['dense']:d}"),
        (f"energy / sample ({report['profile']}, estimate)",
         f"{e['joules_per_sample'] * 1e6:.3f} uJ"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append(f"energy basis: {e['basis']}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> None:
    from randhet import distributed
    from randhet.config import load_config
    from randhet.deploy.pipeline import deploy
    from randhet.export import export_run

    world = distributed.world()
    cfg = load_config(args.config, args.overrides)
    if world.distributed and cfg["deploy"]["backend"] != "emulator":
        raise UserError("under torchrun, 'randhet run' deploys on the sharded emulator only: "
                        "add --set deploy.backend=emulator (or deploy on Lava afterwards with "
                        "one process)")
    trained = cmd_train(args, cfg)
    out = trained["out"]
    path = out / "network.net"
    if world.main:
        path = export_run(out)
    distributed.barrier()
    print(f"exported: {path}")
    d = cfg["deploy"]
    report = deploy(
        path, backend=d["backend"], samples=d["samples"], profile=d["profile"],
        seed=d["seed"], progress=not args.quiet,
    )
    print()
    print(summary_table(trained["metrics"], report))
    files = "config.toml, metrics.json, log.csv, network.net, deploy.json, training.png, deploy.png"
    if cfg["attack"]["enabled"]:
        from randhet.attack.run import attack_run
        from randhet.config import protocol_config

        result = attack_run(out, protocol_config(cfg), progress=not args.quiet)
        print("\nrobustness (accuracy at each eps, mean over fresh draws; AUC):")
        print("\n".join(result["summary"]))
        files += ", robustness.json, robustness.png"
    print(f"\nresults: {out}/ ({files})")


COMMANDS = {
    "train": cmd_train, "export": cmd_export, "deploy": cmd_deploy, "profile": cmd_profile,
    "attack": cmd_attack, "analyze": cmd_analyze, "compare": cmd_compare,
    "flex-compare": cmd_flex_compare, "run": cmd_run, "import": cmd_import,
}


DISTRIBUTED = {"train", "run", "attack", "deploy", "profile"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from randhet import distributed  # imports torch: after parsing, so --help stays quick

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
