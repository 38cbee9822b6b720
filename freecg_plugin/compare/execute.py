"""Running a ``freecg compare`` plan: each run is a ``freecg train`` subprocess in its own folder
(so peak memory is per run). A run is finished when its ``test_metrics.json`` exists; a new
invocation skips finished runs and resumes an interrupted one from its last checkpoint. An
equal-time run starts after the run whose training time is its budget."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from ..files import write_atomic, write_json
from .plan import CompareConfig, Run, plan, width_of
from .report import report, results_of

__all__ = ["run_plan", "train_in_subprocess"]


def train_in_subprocess(config: Dict[str, Any], folder: Path, name: str) -> None:
    """``freecg train`` of the config mapping ``config`` in ``folder`` (its config.yaml and
    train.log), resuming from the folder's last checkpoint when there is one.

    Raises:
        RuntimeError: the training failed (naming ``name`` and its log).
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(config, output=str(folder))
    write_atomic(folder / "config.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False)))
    command = [sys.executable, "-m", "freecg_plugin.cli", "train", "--config", str(folder / "config.yaml")]
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        command += ["--resume", str(last)]  # an interrupted run goes on from its last epoch
    with open(folder / "train.log", "a") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"run {name} failed (exit {code}); see {folder / 'train.log'}")


def _execute(output: Path, run: Run, budget_seconds: Optional[float]) -> None:
    config = copy.deepcopy(run.config)
    if budget_seconds is not None:
        config["optim"]["max_time_s"] = float(budget_seconds)
    train_in_subprocess(config, output / run.folder, run.name)


def run_plan(config: CompareConfig, progress: bool = True) -> Dict[str, Any]:
    """Run (or finish) every run of the plan, then write and return the report."""
    from tqdm import tqdm

    output = Path(config.output)
    runs = plan(config)
    for run in runs:
        if run.seed == config.seeds[0] and (run.budget == "parameters" or run.roles[0][1] == "host, equal parameters"):
            label = run.roles[0][0]
            print(f"compare: {label} at equal parameters: {width_of(run)}", flush=True)
    write_json(output / "plan.json", [asdict(r) for r in runs])
    todo = [r for r in runs if results_of(output, r) is None]
    print(f"compare: {len(runs)} runs in the plan, {len(runs) - len(todo)} already finished -> {output}", flush=True)
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), disable=not progress, unit="run", file=sys.stdout, dynamic_ncols=True)
    by_key = {r.key: r for r in runs}
    for run in todo:
        bar.set_description(run.name)
        budget = None
        if run.time_of is not None:
            reference = results_of(output, by_key[run.time_of])
            budget = reference["train_seconds"]
        start = time.perf_counter()
        _execute(output, run, budget)
        bar.update(1)
        bar.write(f"  done: {run.name} in {time.perf_counter() - start:.0f} s")
    bar.close()
    return report(config, runs)
