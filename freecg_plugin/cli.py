"""The ``freecg`` command line: ``freecg train``, ``freecg test``, ``freecg compare``."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="freecg", description="FreeCG models: train and test on reference data.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model from a YAML config, then test the best checkpoint")
    train.add_argument("--config", required=True, help="YAML config (see examples/configs/small.yaml)")
    train.add_argument("--resume", help="checkpoint to continue from (e.g. OUTPUT/checkpoints/last.ckpt)")
    train.add_argument("--max-epochs", type=int, help="override optim.max_epochs")
    train.add_argument("--output", help="override the output folder")
    test = commands.add_parser("test", help="evaluate a checkpoint on its config's test frames")
    test.add_argument("--checkpoint", required=True)
    test.add_argument("--config", help="YAML config (default: the one stored in the checkpoint)")
    compare = commands.add_parser(
        "compare",
        help="host vs host + FreeCG for each host: same data, split, seed and recipe; equal epochs and equal time",
        description="Train each host bare and with FreeCG through the project's trainer, then write comparison.md/.json "
        "and PNG plots. Finished runs are skipped and an interrupted run resumes, so re-running continues a plan.",
    )
    source = compare.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="comparison plan (YAML; see freecg_plugin/training/presets/quick.yaml)")
    source.add_argument("--preset", help="a shipped plan: quick (all hosts, CPU, ~20 min), full (paper-like, GPU), water")
    compare.add_argument("--output", help="override the output folder")
    compare.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    compare.add_argument("--report-only", action="store_true", help="only collect finished runs into the report")
    args = parser.parse_args(argv)

    if args.command == "compare":
        return _compare(args)

    from .training.config import load_config
    from .training.run import test as run_test
    from .training.run import train as run_train

    try:
        if args.command == "train":
            config = load_config(args.config)
            if args.output:
                config.output = args.output
            run_train(config, resume=args.resume, max_epochs=args.max_epochs)
        else:
            run_test(args.checkpoint, load_config(args.config) if args.config else None)
    except (ValueError, FileNotFoundError) as err:
        print(f"freecg: error: {err}", file=sys.stderr)
        return 2
    return 0


def _compare(args) -> int:
    from .training.compare import load_compare_config, preset_path, report, run_plan

    try:
        config = load_compare_config(args.config or preset_path(args.preset))
        if args.output:
            config.output = args.output
        if args.seeds:
            config.seeds = list(args.seeds)
        report(config) if args.report_only else run_plan(config)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"freecg: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
