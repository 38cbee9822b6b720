"""Running a ``freecg compare`` plan: each run is a ``freecg train`` subprocess in its own folder
(so peak memory is per run), one after another (``executor: local``) or as jobs
(:mod:`~freecg_plugin.compare.jobs`). Every run imports the snapshot of the code taken when the
plan started (:mod:`~freecg_plugin.compare.snapshot`). A run is finished when its
``test_metrics.json`` exists and was made by the same code; a finished run made by other code is
stale: set aside and run again, unless ``accept_stale``. A new invocation skips finished runs
and resumes an interrupted one from its last checkpoint. An equal-time run starts after the run
whose training time is its budget. A curve run whose horizon grew goes on from the same run at
the shorter horizon (:mod:`~freecg_plugin.compare.extend`)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from ..files import check_writable, write_atomic, write_json
from ..hosts import HostStatistics, ModelConfig, build_host
from ..provenance import code_identity
from ..training.parent import PARENT_ENV
from .extend import continue_from, shorter_run
from .plan import CompareConfig, Run, plan, width_of
from .records import record_of, set_aside, statuses, write_job
from .report import report
from .snapshot import snapshot_code, snapshot_environment

__all__ = ["run_plan", "train_in_subprocess"]


def train_in_subprocess(config: Dict[str, Any], folder: Path, name: str, snapshot: Optional[Path] = None) -> None:
    """``freecg train`` of the config mapping ``config`` in ``folder`` (its config.yaml and
    train.log), resuming from the folder's last checkpoint when there is one; with the code of
    ``snapshot`` (see :func:`~freecg_plugin.compare.snapshot.snapshot_code`) when given.

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
    env = snapshot_environment(snapshot) if snapshot is not None else dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())  # the run ends with this process (see training.parent)
    with open(folder / "train.log", "a") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        code = child.wait()
    if code != 0:
        raise RuntimeError(f"run {name} failed (exit {code}); see {folder / 'train.log'}")


def _execute(output: Path, run: Run, budget_seconds: Optional[float], snapshot: Path) -> None:
    config = copy.deepcopy(run.config)
    if budget_seconds is not None:
        config["optim"]["max_time_s"] = float(budget_seconds)
    write_job(output, run, executor="local", pid=os.getpid())
    train_in_subprocess(config, output / run.folder, run.name, snapshot)


def _set_aside_stale(output: Path, runs: List[Run], code: str, accept_stale: bool) -> None:
    stale = [(run, detail) for state, run, detail in statuses(output, runs, code, queue={}) if state == "stale"]
    for run, detail in stale:
        if accept_stale:
            print(f"compare: {run.name}: stale ({detail}), kept as asked (--accept-stale)", flush=True)
        else:
            print(f"compare: {run.name}: stale ({detail}): set aside in {set_aside(output, run)}, run again", flush=True)


def _continue_shorter_curves(output: Path, todo: List[Run], code: str, accept_stale: bool) -> None:
    """Start each curve run not begun yet from a finished run of its settings at a shorter horizon
    (:mod:`~freecg_plugin.compare.extend`), when there is one."""
    for run in todo:
        if run.budget == "curve" and not (output / run.folder).exists():
            source = shorter_run(output, run, code, accept_stale)
            if source is not None:
                continue_from(source, output / run.folder)
                print(f"compare: {run.name}: goes on from {source.name}, the same run at a shorter horizon", flush=True)


def check_models(config: CompareConfig) -> None:
    """Build every host entry bare and with its FreeCG settings once, so that settings the layer
    refuses (groups that do not divide the channels, paths a host cannot take...) fail in one line
    naming the host before the first run, not hours into the plan.

    Raises:
        ValueError: naming the host entry and the problem.
    """
    hosts = {entry["host"] for entry in config.hosts}
    if "mace" in hosts and hosts & {"nequip", "allegro"}:
        raise ValueError(
            "compare: MACE and NequIP/Allegro cannot share a plan: they need environments of their own "
            "(mace-torch pins e3nn 0.4.4, nequip needs e3nn >= 0.6); split the plan"
        )
    for entry in config.hosts:
        model = ModelConfig(
            entry["host"], dict(entry.get("args") or {}), config.cutoff, dict(entry.get("freecg") or {}), entry.get("freecg_layers")
        )
        try:
            build_host(model, HostStatistics([1, 6, 8]))
        except (ValueError, TypeError, AssertionError) as err:
            raise ValueError(
                f"compare: host {entry.get('label', entry['host'])}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from None


def run_plan(config: CompareConfig, progress: bool = True, accept_stale: bool = False) -> Dict[str, Any]:
    """Run (or finish) every run of the plan, then write and return the report.

    Raises:
        RuntimeError: a run failed (local: at once; jobs: when all have ended, one line each).
    """
    from tqdm import tqdm

    output = Path(config.output)
    check_writable(output, "compare: output folder")
    check_models(config)
    runs = plan(config)
    code = code_identity()["sources_sha256"]
    _set_aside_stale(output, runs, code, accept_stale)
    snapshot = snapshot_code(output)
    for run in runs:
        if run.seed == config.seeds[0] and (run.budget == "parameters" or run.roles[0][1] == "host, equal parameters"):
            label = run.roles[0][0]
            print(f"compare: {label} at equal parameters: {width_of(run)}", flush=True)
    write_json(output / "plan.json", [asdict(r) for r in runs])
    todo = [r for r in runs if record_of(output, r) is None]
    print(f"compare: {len(runs)} runs in the plan, {len(runs) - len(todo)} already finished -> {output}", flush=True)
    _continue_shorter_curves(output, todo, code, accept_stale)
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), disable=not progress, unit="run", file=sys.stdout, dynamic_ncols=True)
    by_key = {r.key: r for r in runs}
    if config.executor != "local":
        from .jobs import run_jobs

        failures = run_jobs(config, output, todo, runs, snapshot, bar)
        bar.close()
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(todo)} runs failed (above); run the plan again to resubmit them")
        return report(config, runs, accept_stale)
    for run in todo:
        bar.set_description(run.name)
        budget = None
        if run.time_of is not None:
            reference = record_of(output, by_key[run.time_of])
            budget = reference["train_seconds"]
        start = time.perf_counter()
        _execute(output, run, budget, snapshot)
        bar.update(1)
        bar.write(f"  done: {run.name} in {time.perf_counter() - start:.0f} s")
    bar.close()
    return report(config, runs, accept_stale)
