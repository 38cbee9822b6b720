"""Keep the finished runs of a ``curves`` plan in the repository, so that a study that takes
several sessions (or machines) does not depend on the folder it runs in.

For every finished run under ``RUNS/<molecule>/runs/`` (its ``test_metrics.json`` exists), copies
what the report needs (``config.yaml``, ``test_metrics.json``, ``curve.json`` and, for a run that
went on from a shorter one, ``continues.json``) into ``RECORDS/<molecule>/runs/<key>/``, and writes
the model at the end of the horizon (``checkpoints/last.ckpt``: the EMA weights the curve's last
point was tested with) of the hosts named by ``--models`` as a safe model file,
``RECORDS/<molecule>/models/<key>.freecg`` (what the MD plan of the curves' models reads).

    .venv/bin/python benchmarks/keep_curve_records.py --runs runs/curves --records benchmarks/curves --models visnet

The report is then written from the records (``--accept-stale``: they were made by the plan's code
snapshot, not by this checkout):

    .venv/bin/python benchmarks/compare_molecules.py --preset curves --molecules aspirin,ethanol \\
        --output benchmarks/curves --report-only --accept-stale
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import List

import yaml

from freecg_plugin.checkpoint import export_model
from freecg_plugin.files import write_atomic

RECORD_FILES = ("config.yaml", "test_metrics.json", "curve.json", "continues.json")


def _copy(source: Path, target: Path) -> None:
    write_atomic(target, lambda tmp: shutil.copyfile(source, tmp))


def keep(runs: Path, records: Path, models: List[str]) -> None:
    for folder in sorted(runs.glob("*/runs/*/")):
        if not (folder / "test_metrics.json").is_file():
            continue  # not finished
        molecule = folder.parent.parent.name
        kept = records / molecule / "runs" / folder.name
        kept.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (folder / name).is_file():
                _copy(folder / name, kept / name)
        host = yaml.safe_load((folder / "config.yaml").read_text())["model"]["host"]
        model = records / molecule / "models" / f"{folder.name}.freecg"
        checkpoint = folder / "checkpoints" / "last.ckpt"
        if host in models:
            if checkpoint.is_file():  # written again each time: a run made again replaces its model
                model.parent.mkdir(parents=True, exist_ok=True)
                export_model(checkpoint, model)
                print(f"{molecule}: {folder.name} ({host}): model kept in {model}", flush=True)
            elif not model.is_file():  # a run put back from its records: its model went with its machine
                print(f"{molecule}: {folder.name} ({host}): no checkpoints/last.ckpt, its model is not kept", flush=True)
        print(f"{molecule}: {folder.name} ({host}): kept", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="the plan's output folder (one folder per molecule)")
    parser.add_argument("--records", required=True, help="where the records are kept (benchmarks/curves)")
    parser.add_argument("--models", default="", help="comma-separated hosts whose final models are kept as .freecg files")
    args = parser.parse_args()
    keep(Path(args.runs), Path(args.records), [m for m in args.models.split(",") if m])


if __name__ == "__main__":
    main()
