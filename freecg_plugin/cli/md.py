"""``freecg md`` and ``freecg md-analyse``. ``freecg md`` takes its settings like the other
commands (``--config md.yaml`` and ``key=value``) and as flags, one per field of
:class:`~freecg_plugin.configs.md.MDConfig`, generated from the dataclass and its docstring; flags
win over overrides, overrides over the file, and on ``--resume`` all of them over the run's
stored settings."""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, fields
from typing import Any, Dict

from ..configs.md import MDConfig
from .shared import HEAP_HELP, OVERRIDES, shipped_help, shipped_names, use_heap_allocator

__all__ = ["add_commands", "field_help"]

_FLAGS = {"stop_unstable": "--keep-going"}
"""Fields whose flag is not ``--field-name``; a boolean's flag turns it off."""
_RELATIVE = ("checkpoint", "structure", "reference")
"""Settings that name files: relative to the config file that names them, when they exist there."""


def field_help(cls) -> Dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of a dataclass's docstring."""
    text = (cls.__doc__ or "").split("Attributes:", 1)[-1]
    out: Dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^ {8}(\w+): (.*)$", line)
        if match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current and line.startswith(" " * 12):
            out[current] += " " + line.strip()
    return {k: re.sub(r":\w+:`~?([^`]+)`", r"\1", v).replace("``", "").replace("%", "%%") for k, v in out.items()}


def _type(annotation: str):
    if "List" in annotation:
        return lambda text: text.split(",")
    for name, kind in (("float", float), ("int", int)):
        if name in annotation:
            return kind
    return str


def _add_field_flags(command) -> None:
    helps = field_help(MDConfig)
    for f in fields(MDConfig):
        if f.name == "output":
            continue
        default = "" if f.default is MISSING else f" (default {f.default})"
        flag = _FLAGS.get(f.name, "--" + f.name.replace("_", "-"))
        if "bool" in str(f.type):
            command.add_argument(
                flag, dest=f.name, action="store_false", default=argparse.SUPPRESS, help=f"{f.name} = false: {helps[f.name]}"
            )
        else:
            command.add_argument(flag, dest=f.name, type=_type(str(f.type)), default=argparse.SUPPRESS, help=helps[f.name] + default)


def add_commands(commands) -> None:
    md = commands.add_parser(
        "md",
        help="molecular dynamics with a trained model (ASE integrators), resumable, stopped when unstable",
        description="Simulate with a `freecg train` checkpoint or a compiled nequip model: trajectory.extxyz, log.csv, state.npz "
        "and summary.json in --output, written as the run goes; --resume continues an interrupted run exactly; a run that "
        "becomes unstable (a bond off by more than --bond-tolerance, an RDF off by more than --rdf-threshold) or explodes "
        "stops with a message. `freecg md-analyse OUTPUT` adds observables and plots. "
        f"Shipped protocols (--config NAME): {shipped_help('md')}",
    )
    md.add_argument("--output", required=True, help="folder for the run")
    md.add_argument("--config", help=f"settings from a YAML file, or a shipped protocol ({shipped_names('md')})")
    _add_field_flags(md)
    md.add_argument("--resume", action="store_true", help="continue the run in --output from its last saved state")
    md.add_argument("--quiet", action="store_true", help="no progress bar")
    md.add_argument("--heap-allocator", action="store_true", help=HEAP_HELP)
    md.add_argument("overrides", **{**OVERRIDES, "help": "settings as key=value, e.g. time=20 ensemble=nve"})
    md.set_defaults(run=_md)

    analyse = commands.add_parser(
        "md-analyse",
        help="observables of a `freecg md` run against its reference frames: stability, h(r)/RDF, drift, diffusivity, PNGs",
    )
    analyse.add_argument("folder", metavar="OUTPUT", help="the --output folder of a `freecg md` run")
    analyse.set_defaults(run=_md_analyse)


def _settings(args) -> Dict[str, Any]:
    """The settings the command line gives: the config file, then overrides, then flags."""
    from ..configs.reading import apply_overrides, config_path, read_config

    values: Dict[str, Any] = {}
    if args.config:
        path = config_path(args.config, "md")
        values = read_config(path, (), "md config")
        for key in _RELATIVE:
            if isinstance(values.get(key), str) and (path.resolve().parent / values[key]).exists():
                values[key] = str((path.resolve().parent / values[key]).resolve())
    values = apply_overrides(values, args.overrides)
    values.update({f.name: getattr(args, f.name) for f in fields(MDConfig) if hasattr(args, f.name) and f.name != "output"})
    known = {f.name for f in fields(MDConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"md: unknown settings {unknown}; known: {sorted(known - {'output'})}")
    return values


def _md(args) -> None:
    from ..md import simulate, stored_config

    use_heap_allocator(args)
    given = dict(_settings(args), output=args.output)
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
    from ..md import analyse

    result = analyse(args.folder)
    print("\n".join(f"{key}: {value}" for key, value in result.items() if not isinstance(value, (dict, list))))
