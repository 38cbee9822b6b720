"""``freecg train``, ``freecg test`` and ``freecg evaluate``."""

from __future__ import annotations

from .shared import HEAP_HELP, OVERRIDES, shipped_help, shipped_names, use_heap_allocator

__all__ = ["add_commands"]


def add_commands(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train a model from a YAML config, then test the best checkpoint",
        description=f"Train, then test the best checkpoint. Shipped configs (--config NAME): {shipped_help('train')}",
    )
    train.add_argument("--config", required=True, help=f"a YAML file, or the name of a shipped config ({shipped_names('train')})")
    train.add_argument("--resume", help="checkpoint to continue from (e.g. OUTPUT/checkpoints/last.ckpt)")
    train.add_argument("--max-epochs", type=int, help="override optim.max_epochs")
    train.add_argument("--output", help="override the output folder")
    train.add_argument("--print-config", action="store_true", help="print the config with overrides applied, and exit")
    train.add_argument("overrides", **OVERRIDES)
    train.set_defaults(run=_train)

    test = commands.add_parser("test", help="evaluate a checkpoint on its config's test frames")
    test.add_argument("--checkpoint", required=True)
    test.add_argument("--config", help="YAML config (default: the one stored in the checkpoint)")
    test.set_defaults(run=_test)

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
    evaluate.add_argument("--heap-allocator", action="store_true", help=HEAP_HELP)
    evaluate.set_defaults(run=_evaluate)


def _train(args) -> None:
    from ..configs.train import load_config

    config = load_config(args.config, args.overrides)
    if args.output:
        config.output = args.output
    if args.max_epochs is not None:
        config.optim.max_epochs = args.max_epochs
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return
    from ..training import train
    from ..training.parent import follow_parent

    follow_parent()
    train(config, resume=args.resume)


def _test(args) -> None:
    from ..checkpoint import run_folder_of, stored_config
    from ..configs.train import load_config

    config = load_config(args.config) if args.config else stored_config(args.checkpoint)
    if not args.config:  # the report goes beside the checkpoint, not into its stored (relative) output folder
        config.output = str(run_folder_of(args.checkpoint))
    if config.task == "properties":
        from ..properties.data import load_property_data
        from ..training.properties import evaluate_properties

        evaluate_properties(args.checkpoint, load_property_data(config.data, config.targets)[2], config.output)
        return
    from ..training import test

    test(args.checkpoint, config)


def _evaluate(args) -> None:
    from ..evaluation import evaluate_file

    use_heap_allocator(args)
    keys = None
    if args.key:
        pairs = [item.split("=", 1) for item in args.key]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"--key takes NAME=KEY (e.g. energy=REF_energy), got {args.key}")
        keys = dict(pairs)
    evaluate_file(args.checkpoint, args.data, args.output, args.energy_unit, keys, args.device, args.batch_size)
