"""The ``freecg`` command line: ``train``, ``test``, ``evaluate``, ``compare``, ``md``, ``md-compare``
and ``data``.
It parses arguments and hands over; errors come out as one line (exit code 2)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]

# optional dependency (top-level module) -> the extra that installs it
_EXTRAS = {
    "lightning": "train", "yaml": "train", "matplotlib": "train", "vesin": "train", "tqdm": "train", "pooch": "train",
    "platformdirs": "train", "omegaconf": "train", "ase": "train", "torch_geometric": "pyg", "schnetpack": "schnetpack",
    "nequip": "nequip", "allegro": "nequip",
}  # fmt: skip

_HEAP_HELP = (
    "large systems on the CPU: glibc serves every buffer from its heap and keeps freed memory for reuse "
    "(faster above ~10^3 atoms, more peak memory; see README)"
)


def _shipped(kind: str) -> str:
    from .configs import shipped_configs

    return "; ".join(f"{name}: {about}" for name, about in shipped_configs(kind).items())


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="freecg", description="FreeCG potentials: train, test, evaluate, compare, and reference data.")
    parser.add_argument("--version", action="version", version=f"freecg-plugin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,test,evaluate,compare,md,md-analyse,md-compare,data}")
    overrides = dict(nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.train=my.xyz optim.lr=1e-3 model.freecg=null")

    train = commands.add_parser(
        "train",
        help="train a model from a YAML config, then test the best checkpoint",
        description=f"Train, then test the best checkpoint. Shipped configs (--config NAME): {_shipped('train')}.",
    )
    train.add_argument("--config", required=True, help="a YAML file, or the name of a shipped config (small, paper, water, lips, own_data)")
    train.add_argument("--resume", help="checkpoint to continue from (e.g. OUTPUT/checkpoints/last.ckpt)")
    train.add_argument("--max-epochs", type=int, help="override optim.max_epochs")
    train.add_argument("--output", help="override the output folder")
    train.add_argument("--print-config", action="store_true", help="print the config with overrides applied, and exit")
    train.add_argument("overrides", **overrides)

    test = commands.add_parser("test", help="evaluate a checkpoint on its config's test frames")
    test.add_argument("--checkpoint", required=True)
    test.add_argument("--config", help="YAML config (default: the one stored in the checkpoint)")

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint on any labelled file: metrics, parity plot, predictions as extxyz",
        description="Metrics table and force parity plot of a trained model on FILE (extxyz, npz, ASE database); "
        "with --output, predictions (energy, forces, stress) and the file's labels written as extxyz.",
    )
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, metavar="FILE")
    evaluate.add_argument("--output", metavar="PRED.xyz", help="write predictions here (extxyz)")
    evaluate.add_argument("--energy-unit", help="unit of FILE's energies (default: the training config's)")
    evaluate.add_argument(
        "--key", action="append", default=None, metavar="NAME=KEY", help="FILE's key for energy/forces/stress, e.g. energy=REF_energy"
    )
    evaluate.add_argument("--device", help="cpu, cuda... (default: the training device)")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--heap-allocator", action="store_true", help=_HEAP_HELP)

    compare = commands.add_parser(
        "compare",
        help="host vs host + FreeCG for each host: same data, split, seed and recipe; equal epochs and equal time",
        description="Train each host bare and with FreeCG through the project's trainer, then write comparison.md/.json "
        "and PNG plots. Finished runs are skipped and an interrupted run resumes, so re-running continues a plan. "
        f"Shipped plans (--preset NAME): {_shipped('compare')}.",
    )
    source = compare.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="comparison plan (YAML)")
    source.add_argument("--preset", help="a shipped plan: quick, full, water")
    compare.add_argument("--output", help="override the output folder")
    compare.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    compare.add_argument("--report-only", action="store_true", help="only collect finished runs into the report")
    compare.add_argument("--print-config", action="store_true", help="print the plan with overrides applied, and exit")
    compare.add_argument("overrides", **overrides)

    md = commands.add_parser(
        "md",
        help="molecular dynamics with a trained model (ASE integrators), resumable, stopped when unstable",
        description="Simulate with a `freecg train` checkpoint: trajectory.extxyz, log.csv, state.npz and summary.json in "
        "--output, written as the run goes; --resume continues an interrupted run exactly; a run that becomes unstable "
        "(a bond off by more than --bond-tolerance, an RDF off by more than --rdf-threshold) or explodes stops with a message. "
        "`freecg md-analyse OUTPUT` adds observables and plots.",
    )
    unset = dict(default=argparse.SUPPRESS)  # options not given stay unset: defaults, or the resumed run's settings
    md.add_argument(
        "--checkpoint",
        help="a `freecg train` checkpoint, or a nequip model compiled for ASE (.nequip.pt2; needs --structure and "
        "--energy-unit); with --resume: the run's own",
        **unset,
    )
    md.add_argument("--output", required=True, help="folder for the run")
    md.add_argument("--structure", help="starting structure: a file ASE reads, or a dataset name (default: the checkpoint's data)", **unset)
    md.add_argument("--frame", type=int, help="frame of --structure (default 0; -1: the last)", **unset)
    md.add_argument("--ensemble", help="nve, langevin (NVT), nose-hoover (NVT), npt (default langevin)", **unset)
    md.add_argument("--temperature", type=float, help="K: initial velocities and thermostat (default 300)", **unset)
    md.add_argument("--timestep", type=float, help="fs (default 0.5)", **unset)
    md.add_argument("--time", type=float, help="ps to simulate (default 10; with --resume, a longer time extends the run)", **unset)
    md.add_argument("--friction", type=float, help="Langevin friction, 1/fs (default 0.01)", **unset)
    md.add_argument("--tdamp", type=float, help="Nose-Hoover time constant, fs (default 100 steps)", **unset)
    md.add_argument("--pressure", type=float, help="NPT pressure, bar (default 1)", **unset)
    md.add_argument("--pdamp", type=float, help="NPT barostat time constant, fs (default 1000 steps)", **unset)
    md.add_argument("--seed", type=int, help="initial velocities and Langevin noise (default 0)", **unset)
    md.add_argument("--dtype", help="float64 (default) or float32", **unset)
    md.add_argument("--device", help="cpu (default), cuda...", **unset)
    md.add_argument("--log-every", dest="log_every", type=int, help="steps between log.csv rows (default 10)", **unset)
    md.add_argument("--save-every", dest="save_every", type=int, help="steps between saved frames and states (default 20)", **unset)
    md.add_argument("--keep-going", dest="stop_unstable", action="store_false", help="record instability, do not stop at it", **unset)
    md.add_argument("--bond-tolerance", dest="bond_tolerance", type=float, help="molecules: Å a bond may deviate (default 0.5)", **unset)
    md.add_argument(
        "--rdf-threshold",
        dest="rdf_threshold",
        type=float,
        help="cells: RDF error making a 1 ps window unstable (water 3.0, LiPS 1.0)",
        **unset,
    )
    md.add_argument(
        "--rdf-pairs",
        dest="rdf_pairs",
        type=lambda text: text.split(","),
        help="RDF check pairs, e.g. O-O,O-H,H-H (default: all atoms)",
        **unset,
    )
    md.add_argument("--rdf-window", dest="rdf_window", type=float, help="ps per RDF window (default 1)", **unset)
    md.add_argument("--reference", help="reference frames (file or dataset name; default: the checkpoint's training data)", **unset)
    md.add_argument("--energy-unit", dest="energy_unit", help="a nequip model's energy unit (eV, kcal/mol, ...)", **unset)
    md.add_argument("--resume", action="store_true", help="continue the run in --output from its last saved state")
    md.add_argument("--quiet", action="store_true", help="no progress bar")
    md.add_argument("--heap-allocator", action="store_true", help=_HEAP_HELP)

    analyse = commands.add_parser(
        "md-analyse",
        help="observables of a `freecg md` run against its reference frames: stability, h(r)/RDF, drift, diffusivity, PNGs",
    )
    analyse.add_argument("run", metavar="OUTPUT", help="the --output folder of a `freecg md` run")

    md_compare = commands.add_parser(
        "md-compare",
        help="host vs host + FreeCG through the same MD protocol, several seeds: stable time, observables, drift, speed",
        description="Run each system's models through `freecg md` for each seed, analyse, and write md_comparison.md/.json/.png. "
        "Finished runs are kept and interrupted ones resume, so re-running continues a plan. "
        f"Shipped plans (--preset NAME): {_shipped('md_compare')}.",
    )
    md_source = md_compare.add_mutually_exclusive_group(required=True)
    md_source.add_argument("--config", help="MD comparison plan (YAML)")
    md_source.add_argument("--preset", help="a shipped plan")
    md_compare.add_argument("--output", help="override the output folder")
    md_compare.add_argument("--report-only", action="store_true", help="only collect finished runs into the report")
    md_compare.add_argument("overrides", **overrides)

    data = commands.add_parser("data", help="public reference datasets: list, fetch, prepare, path")
    actions = data.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every dataset freecg knows, and where it is now")
    fetch = actions.add_parser("fetch", help="download a dataset into $FREECG_DATA (or the per-user cache), checksums checked")
    fetch.add_argument("name", help="e.g. rmd17/aspirin (see freecg data list)")
    fetch.add_argument("--split", type=int, help="rMD17: only this split (1-5)")
    prepare = actions.add_parser("prepare", help="make a dataset from an installed package: qm9 (from qm9pack, 130,831 molecules)")
    prepare.add_argument("name", choices=["qm9"])
    prepare.add_argument("--source", help="qm9pack's data folder (default: the installed package's)")
    path = actions.add_parser("path", help="print the folder holding a dataset (the shipped copy, then the cache)")
    path.add_argument("name")
    path.add_argument("--split", type=int, help="rMD17 split (1-5)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "train": _train, "test": _test, "evaluate": _evaluate, "compare": _compare, "md": _md, "md-analyse": _md_analyse,
        "md-compare": _md_compare, "data": _data,
    }  # fmt: skip
    try:
        handlers[args.command](args)
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top not in _EXTRAS:
            raise
        print(f"freecg: error: {top} is not installed; install it with: pip install 'freecg-plugin[{_EXTRAS[top]}]'", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as err:
        print(f"freecg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freecg: interrupted; `--resume` (train, md) or re-running (compare, md-compare) continues", file=sys.stderr)
        return 130
    return 0


def _train(args) -> None:
    from .training.config import load_config

    config = load_config(args.config, args.overrides)
    if args.output:
        config.output = args.output
    if args.max_epochs is not None:
        config.optim.max_epochs = args.max_epochs
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return
    from .training.run import train

    train(config, resume=args.resume)


def _test(args) -> None:
    from .training.config import load_config
    from .training.run import test

    config = load_config(args.config) if args.config else None
    stored = _checkpoint_config(args.checkpoint)
    if (config or stored).task == "properties":
        from .properties.training import evaluate_properties, load_property_data

        config = config or stored
        evaluate_properties(args.checkpoint, load_property_data(config.data, config.targets)[2], config.output)
        return
    test(args.checkpoint, config)


def _checkpoint_config(checkpoint: str):
    """The training config stored in a ``freecg train`` checkpoint (one-line errors)."""
    from pathlib import Path

    import torch

    from .training.config import TrainConfig

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    try:
        return TrainConfig.from_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["hyper_parameters"]["config"])
    except (KeyError, RuntimeError, EOFError) as err:
        raise ValueError(f"{checkpoint}: not a readable freecg checkpoint ({type(err).__name__})") from None


def _use_heap_allocator(args) -> None:
    if args.heap_allocator:
        from .allocator import keep_freed_memory

        keep_freed_memory()


def _evaluate(args) -> None:
    from .training.run import evaluate_file

    _use_heap_allocator(args)
    keys = None
    if args.key:
        pairs = [item.split("=", 1) for item in args.key]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"--key takes NAME=KEY (e.g. energy=REF_energy), got {args.key}")
        keys = dict(pairs)
    evaluate_file(args.checkpoint, args.data, args.output, args.energy_unit, keys, args.device, args.batch_size)


def _compare(args) -> None:
    from .training.compare import load_compare_config, report, run_plan
    from .training.config import config_path

    config = load_compare_config(
        config_path(args.config, "compare") if args.config else config_path(args.preset, "compare"), args.overrides
    )
    if args.output:
        config.output = args.output
    if args.seeds:
        config.seeds = list(args.seeds)
    if args.print_config:
        import dataclasses

        import yaml

        print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), end="")
        return
    report(config) if args.report_only else run_plan(config)


def _md(args) -> None:
    from dataclasses import fields

    from .md import MDConfig, simulate, stored_config

    _use_heap_allocator(args)
    given = {f.name: getattr(args, f.name) for f in fields(MDConfig) if hasattr(args, f.name)}
    if args.resume:
        config = MDConfig(**{**stored_config(args.output).to_dict(), **given})
    elif "checkpoint" not in given:
        raise ValueError("md: --checkpoint is required for a new run")
    else:
        config = MDConfig(**given)
    run = simulate(config, resume=args.resume, progress=not args.quiet)
    if run.status == "completed":
        print(f"completed: {run.steps} steps ({run.stable_time:.3f} ps), {run.ns_per_day:.3g} ns/day; {args.output}")
    else:
        stopped = run.steps * config.timestep / 1000
        print(
            f"{run.status} from {run.stable_time:.3f} ps: {run.reason}; stopped at {stopped:.3f} ps; all written up to it is in {args.output}"
        )


def _md_analyse(args) -> None:
    from .md import analyse

    result = analyse(args.run)
    print("\n".join(f"{key}: {value}" for key, value in result.items() if not isinstance(value, (dict, list))))


def _md_compare(args) -> None:
    from .md.compare import load_md_compare_config, report, run_plan
    from .training.config import config_path

    config = load_md_compare_config(
        config_path(args.config, "md_compare") if args.config else config_path(args.preset, "md_compare"), args.overrides
    )
    if args.output:
        config.output = args.output
    report(config) if args.report_only else run_plan(config)


def _data(args) -> None:
    from .data import registry

    split = None if getattr(args, "split", None) is None else f"{args.split:02d}"
    if args.action == "list":
        print(f"data roots searched: {', '.join(str(r) for r in registry.data_roots())}")
        print(f"{'name':<28} {'format':<10} {'unit':<9} {'licence':<14} where")
        for entry in registry.datasets():
            licence = entry.licence if len(entry.licence) <= 14 else entry.licence.split(" ")[0] if "-" in entry.licence else "see source"
            print(f"{entry.name:<28} {entry.format:<10} {entry.energy_unit:<9} {licence:<14} {registry.describe(entry.name)}")
    elif args.action == "prepare":
        from .properties.qm9 import prepare_qm9

        entry = registry.dataset("qm9/qm9pack")
        print(prepare_qm9(registry.cache_root() / entry.files[0].path, args.source, progress=True))
    elif args.action == "fetch":
        for path in registry.fetch(args.name, split, progress=sys.stderr.isatty()):
            print(path)
    else:
        print(registry.locate(args.name, split))


if __name__ == "__main__":
    sys.exit(main())
