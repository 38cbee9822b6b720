"""The ``freecg`` command line: ``freecg train``, ``freecg test``."""

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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
