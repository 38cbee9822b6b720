"""A plan's runs as jobs (``executor: slurm`` or ``local_jobs``), through submitit.

Each run is one job that runs ``freecg train`` in its run folder with the plan's code snapshot
first on ``PYTHONPATH`` (:mod:`~freecg_plugin.compare.snapshot`), resuming from the folder's last
checkpoint. Requeueing is submitit's alone: on a pre-emption or the time limit it requeues the
job, which resumes from the last checkpoint (Lightning's own SLURM auto-requeue is switched off
in the trainer). An equal-time run needs its FreeCG run's training time: this driver submits it
when that run has finished, to the node that run used (the same hardware). The driver waits for
the last job and then writes the report (``freecg compare --report-only`` writes it from
finished runs at any time). A job that fails or is cancelled is reported in one line with its
log and never counted; running the plan again submits only what is missing.

Job states come from ``squeue`` and the run folders (SLURM accounting may be off); submitit's
local executor's from its processes.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from submitit.helpers import Checkpointable

from .plan import CompareConfig, Run
from .records import read_job, record_of, slurm_states, write_job

__all__ = ["TrainJob", "run_jobs"]

POLL_S = 2.0


class TrainJob(Checkpointable):
    """One run as a submitit job: ``freecg train`` in ``folder`` with the plan's code snapshot.
    Requeued (pre-emption, time limit), it is called again and resumes from the last checkpoint."""

    def __init__(self, config: Dict[str, Any], folder: str, name: str, snapshot: str) -> None:
        self.config, self.folder, self.name, self.snapshot = config, folder, name, snapshot

    def __call__(self) -> str:
        from .execute import train_in_subprocess

        train_in_subprocess(self.config, Path(self.folder), self.name, Path(self.snapshot))
        return self.folder


def _executor(config: CompareConfig, folder: Path, snapshot: Path, nodelist: Optional[str] = None):
    import submitit

    settings = dict(config.slurm or {})
    minutes = int(settings.get("time", 7 * 24 * 60))
    if config.executor == "local_jobs":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=minutes, gpus_per_node=int(settings.get("gpus_per_node", 0)))
        return executor
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=100)
    parameters: Dict[str, Any] = {
        "time": minutes,
        "cpus_per_task": int(settings.get("cpus_per_task", 1)),
        "setup": [f"export PYTHONPATH={snapshot}${{PYTHONPATH:+:$PYTHONPATH}} PYTHONSAFEPATH=1"],
        "additional_parameters": dict(settings.get("sbatch") or {}),
        "job_name": "freecg-compare",
    }
    if nodelist:
        parameters["nodelist"] = nodelist  # an equal-time run goes where its reference ran
    for key in ("partition", "gpus_per_node", "mem", "account", "qos"):
        if settings.get(key) is not None:
            parameters[key] = settings[key]
    executor.update_parameters(**parameters)
    return executor


def _budgeted(run: Run, budget: Optional[float]) -> Dict[str, Any]:
    config = copy.deepcopy(run.config)
    if budget is not None:
        config["optim"]["max_time_s"] = float(budget)
    return config


def _host_of(record: Dict[str, Any]) -> Optional[str]:
    return record.get("provenance", {}).get("hardware", {}).get("host")


def run_jobs(config: CompareConfig, output: Path, todo: Sequence[Run], runs: Sequence[Run], snapshot: Path, bar) -> List[str]:
    """Submit ``todo`` as jobs (each equal-time run when its reference has finished), wait for all,
    and return one line per failed job (empty when all finished)."""
    by_key = {r.key: r for r in runs}
    limit = (config.slurm or {}).get("max_parallel") or (1 if config.executor == "local_jobs" else len(todo) or 1)
    waiting = list(todo)
    jobs: Dict[str, Any] = {}  # run key -> submitit job, while it is queued or running
    failures: List[str] = []
    logs = output / "jobs"
    while waiting or jobs:
        for run in list(waiting):
            if len(jobs) >= int(limit):
                break
            reference = record_of(output, by_key[run.time_of]) if run.time_of is not None else None
            if run.time_of is not None and reference is None:
                if not any(k == run.time_of for k in jobs) and by_key[run.time_of] not in waiting:
                    failures.append(f"compare: {run.name} not run: the run whose time it gets did not finish")
                    waiting.remove(run)
                continue
            budget = reference["train_seconds"] if reference is not None else None
            executor = _executor(config, logs, snapshot, _host_of(reference) if reference is not None else None)
            folder = output / run.folder
            job = executor.submit(TrainJob(_budgeted(run, budget), str(folder), run.name, str(snapshot)))
            write_job(
                output, run, executor=config.executor, job_id=str(job.job_id), log=str(job.paths.stderr).replace("%j", str(job.job_id))
            )
            jobs[run.key] = job
            waiting.remove(run)
            bar.write(f"  submitted: {run.name} as job {job.job_id}")
        time.sleep(POLL_S)
        queue = slurm_states() if config.executor == "slurm" else {}
        for key, job in list(jobs.items()):
            run = by_key[key]
            ended = job.done() if config.executor == "local_jobs" else str(job.job_id) not in queue
            if not ended:
                continue
            del jobs[key]
            if record_of(output, run) is not None:
                bar.update(1)
                bar.write(f"  done: {run.name}")
            else:
                job_info = read_job(output, run) or {}
                failures.append(
                    f"compare: {run.name} failed (job {job.job_id}); log: {job_info.get('log')}, {output / run.folder / 'train.log'}"
                )
                bar.write(failures[-1])
    sys.stdout.flush()
    return failures
