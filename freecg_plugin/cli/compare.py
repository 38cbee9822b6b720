"""``freecg compare`` and ``freecg md-compare``: plans read the same way (a YAML file or a shipped
plan, ``key=value`` overrides), with their help listing the plans that ship."""

from __future__ import annotations

from .shared import OVERRIDES, shipped_help, shipped_names

__all__ = ["add_commands"]


def _plan_parser(commands, name: str, kind: str, help: str, description: str):
    """A plan command: ``--config FILE`` or ``--preset NAME``, ``--output``, ``--report-only``,
    overrides."""
    command = commands.add_parser(name, help=help, description=f"{description} Shipped plans (--preset NAME): {shipped_help(kind)}")
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="a plan (YAML)")
    source.add_argument("--preset", help=f"a shipped plan: {shipped_names(kind)}")
    command.add_argument("--output", help="override the output folder")
    command.add_argument("--report-only", action="store_true", help="only collect finished runs into the report")
    command.add_argument("--print-config", action="store_true", help="print the plan with overrides applied, and exit")
    command.add_argument("overrides", **OVERRIDES)
    return command


def add_commands(commands) -> None:
    compare = _plan_parser(
        commands,
        "compare",
        "compare",
        help="host vs host + FreeCG for each host: same data, split, seed and recipe; equal epochs, equal time and equal parameters",
        description="Train each host bare and with FreeCG through the project's trainer under the plan's budgets (equal epochs, "
        "equal wall-clock time, equal parameters) over several seeds, then write comparison.md/.json with a verdict per host "
        "and budget, and PNG plots. Finished runs are skipped and an interrupted run resumes, so re-running continues a plan.",
    )
    compare.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    compare.add_argument(
        "--status", action="store_true", help="list the plan's runs as finished / stale / running / queued / failed / not started, and exit"
    )
    compare.add_argument(
        "--accept-stale", action="store_true", help="keep and report finished runs made by other code than this (default: redo them)"
    )
    compare.set_defaults(run=_compare)
    md_compare = _plan_parser(
        commands,
        "md-compare",
        "md_compare",
        help="host vs host + FreeCG through the same MD protocol, several seeds: stable time, observables, drift, speed",
        description="Run each system's models through `freecg md` for each seed, analyse, and write md_comparison.md/.json/.png. "
        "Finished runs are kept and interrupted ones resume, so re-running continues a plan.",
    )
    md_compare.set_defaults(run=_md_compare)


def _print_plan(config) -> None:
    import dataclasses

    import yaml

    print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), end="")


def _compare(args) -> None:
    from ..compare import load_compare_config, report, run_plan

    config = load_compare_config(args.config or args.preset, args.overrides)
    if args.output:
        config.output = args.output
    if args.seeds:
        config.seeds = list(args.seeds)
    if args.print_config:
        return _print_plan(config)
    if args.status:
        return _print_status(config)
    report(config, accept_stale=args.accept_stale) if args.report_only else run_plan(config, accept_stale=args.accept_stale)


def _print_status(config) -> None:
    from pathlib import Path

    from ..compare import plan
    from ..compare.records import STATES, statuses
    from ..provenance import code_identity

    rows = statuses(Path(config.output), plan(config), code_identity()["sources_sha256"])
    width = max(len(run.name) for _, run, _ in rows)
    for state, run, detail in rows:
        print(f"{state:<12} {run.name:<{width}}  {run.folder}  {detail}".rstrip())
    counts = {s: sum(1 for state, _, _ in rows if state == s) for s in STATES}
    print("; ".join(f"{n} {s}" for s, n in counts.items() if n) + f" ({len(rows)} runs)")


def _md_compare(args) -> None:
    from ..compare.md import load_md_compare_config, report, run_plan

    config = load_md_compare_config(args.config or args.preset, args.overrides)
    if args.output:
        config.output = args.output
    if args.print_config:
        return _print_plan(config)
    report(config) if args.report_only else run_plan(config)
