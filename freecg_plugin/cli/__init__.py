"""The ``freecg`` command line: one module per command group (:mod:`~freecg_plugin.cli.train`:
``train``, ``test``, ``evaluate``; :mod:`~freecg_plugin.cli.compare`: ``compare``,
``md-compare``; :mod:`~freecg_plugin.cli.models`: ``export``, ``convert``; :mod:`~freecg_plugin.cli.md`: ``md``, ``md-analyse``; :mod:`~freecg_plugin.cli.data`:
``data``). It parses arguments and hands over; errors come out as one line (exit code 2)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import compare, data, md, models, train

__all__ = ["main", "parser"]

GROUPS = (train, models, compare, md, data)
"""The command groups, in the order ``freecg --help`` lists them."""

# optional dependency (top-level module) -> the extra that installs it
_EXTRAS = {
    "lightning": "train", "yaml": "train", "matplotlib": "train", "vesin": "train", "tqdm": "train", "pooch": "train",
    "platformdirs": "train", "omegaconf": "train", "ase": "train", "torch_geometric": "pyg", "schnetpack": "schnetpack",
    "nequip": "nequip", "allegro": "nequip", "torch_sim": "md", "openmm": "openmm", "openmmml": "openmm", "safetensors": "train",
    "mace": "mace",
}  # fmt: skip
_OWN_ENVIRONMENT = " in an environment of its own (mace-torch pins e3nn 0.4.4, nequip needs e3nn >= 0.6: they cannot share one)"
"""Said when MACE, or NequIP/Allegro, is missing: the two never share an environment."""


def parser() -> argparse.ArgumentParser:
    """The ``freecg`` parser; each command's handler is its ``run`` default."""
    from .. import __version__

    top = argparse.ArgumentParser(
        prog="freecg", description="FreeCG potentials: train, test, evaluate, compare, simulate, and reference data."
    )
    top.add_argument("--version", action="version", version=f"freecg-plugin {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(commands)
    commands.metavar = "{" + ",".join(commands.choices) + "}"
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top not in _EXTRAS:
            raise
        where = _OWN_ENVIRONMENT if _EXTRAS[top] in ("mace", "nequip") else ""
        print(
            f"freecg: error: {top} is not installed; install it with: pip install 'freecg-plugin[{_EXTRAS[top]}]'{where}", file=sys.stderr
        )
        return 2
    except (ValueError, OSError, RuntimeError) as err:
        print(f"freecg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freecg: interrupted; `--resume` (train, md) or re-running (compare, md-compare) continues", file=sys.stderr)
        return 130
    return 0
