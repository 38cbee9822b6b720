"""``freecg export`` (a checkpoint's potential as a safe model file) and ``freecg convert`` (an
old checkpoint that needs unpickling, rewritten once, for a file you trust)."""

from __future__ import annotations

__all__ = ["add_commands"]


def add_commands(commands) -> None:
    export = commands.add_parser(
        "export",
        help="a trained potential as a safe model file (weights in safetensors + a JSON record; nothing to unpickle), "
        "or as a metatomic model for simulation engines",
        description="Write the potential of a `freecg train` checkpoint (or of a model file) as a .freecg model file: the "
        "weights as tested (safetensors) and a JSON record of everything needed to rebuild it from the installed package "
        "(host and its arguments, FreeCG settings, elements, cutoff, energy unit, dtype, the version that wrote it, the "
        "weights' SHA-256); freecg evaluate, freecg md, FreeCGCalculator, the TorchSim model and OpenMM load it. "
        "--format metatomic writes a TorchScript metatomic model instead (PaiNN and SO3net hosts), which metatomic's "
        "engines load: ASE (metatomic-ase), TorchSim (metatomic-torchsim), i-PI, LAMMPS, GROMACS and PLUMED builds.",
    )
    export.add_argument("checkpoint", metavar="CKPT")
    export.add_argument("--output", required=True, metavar="MODEL.freecg|MODEL.pt")
    export.add_argument("--format", choices=["freecg", "metatomic"], default="freecg", help="the file to write (default: freecg)")
    export.add_argument(
        "--dtype", choices=["float64", "float32"], default="float64", help="metatomic: the precision the model runs in (default: float64)"
    )
    export.set_defaults(run=_export)

    convert = commands.add_parser(
        "convert",
        help="rewrite an old checkpoint that needs unpickling as one that does not (only for a file you trust: --trust)",
        description="Checkpoints are read without unpickling; one that holds Python objects is refused, since loading it "
        "would run code from the file. If you trust who made it, convert it once: it is unpickled (with --trust only) "
        "and written again with plain values and tensors.",
    )
    convert.add_argument("checkpoint", metavar="OLD.ckpt")
    convert.add_argument("--output", required=True, metavar="NEW.ckpt")
    convert.add_argument("--trust", action="store_true", help="unpickle OLD.ckpt (runs any code it holds)")
    convert.set_defaults(run=_convert)


def _export(args) -> None:
    if args.format == "metatomic":
        import torch

        from ..integrations.metatomic import export_metatomic

        path = export_metatomic(args.checkpoint, args.output, getattr(torch, args.dtype))
    else:
        from ..checkpoint import export_model

        path = export_model(args.checkpoint, args.output)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")


def _convert(args) -> None:
    from ..checkpoint import convert_checkpoint

    print(convert_checkpoint(args.checkpoint, args.output, args.trust))
