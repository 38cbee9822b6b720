"""``freecg data``: the public reference datasets (list, fetch, prepare, path)."""

from __future__ import annotations

import sys

__all__ = ["add_commands"]


def add_commands(commands) -> None:
    data = commands.add_parser("data", help="public reference datasets: list, fetch, prepare, path")
    actions = data.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every dataset freecg knows, and where it is now")
    fetch = actions.add_parser("fetch", help="download a dataset into $FREECG_DATA (or the per-user cache), checksums checked")
    fetch.add_argument("name", help="e.g. rmd17/aspirin (see freecg data list)")
    fetch.add_argument("--split", type=int, help="rMD17: only this split (1-5)")
    fetch.add_argument(
        "--require-hash",
        action="store_true",
        help="refuse files without a published SHA-256 (default: trust the first download and pin it)",
    )
    prepare = actions.add_parser("prepare", help="make a dataset from an installed package: qm9 (from qm9pack, 130,831 molecules)")
    prepare.add_argument("name", choices=["qm9"])
    prepare.add_argument("--source", help="qm9pack's data folder (default: the installed package's)")
    path = actions.add_parser("path", help="print the folder holding a dataset (the shipped copy, then the cache)")
    path.add_argument("name")
    path.add_argument("--split", type=int, help="rMD17 split (1-5)")
    data.set_defaults(run=_data)


def _data(args) -> None:
    from ..data import registry

    split = None if getattr(args, "split", None) is None else f"{args.split:02d}"
    if args.action == "list":
        print(f"data roots searched: {', '.join(str(r) for r in registry.data_roots())}")
        print(f"{'name':<28} {'format':<10} {'unit':<9} {'licence':<14} where")
        for entry in registry.datasets():
            licence = entry.licence if len(entry.licence) <= 14 else entry.licence.split(" ")[0] if "-" in entry.licence else "see source"
            print(f"{entry.name:<28} {entry.format:<10} {entry.energy_unit:<9} {licence:<14} {registry.describe(entry.name)}")
    elif args.action == "prepare":
        from ..properties.qm9 import prepare_qm9

        entry = registry.dataset("qm9/qm9pack")
        print(prepare_qm9(registry.cache_root() / entry.files[0].path, args.source, progress=True))
    elif args.action == "fetch":
        for path in registry.fetch(args.name, split, progress=sys.stderr.isatty(), require_hash=args.require_hash):
            print(path)
    else:
        print(registry.locate(args.name, split))
