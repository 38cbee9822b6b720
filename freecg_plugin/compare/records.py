"""What a plan's run folders say: whether each run is finished (its record, made by the code now
running), stale (a record made by other code, or one without a code record), running, queued,
failed (with its log) or not started; the job each run was sent as (``job.json``); and the checks
that keep a report honest (no silent mix of code versions, equal-time runs on the same kind of
machine as the run whose time they get).

``freecg compare --status`` prints :func:`statuses`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..files import write_json
from ..provenance import same_hardware
from .plan import Run

__all__ = [
    "STATES",
    "check_equal_time_hardware",
    "code_of",
    "read_job",
    "record_of",
    "set_aside",
    "slurm_states",
    "statuses",
    "write_job",
]

STATES = ("finished", "stale", "running", "queued", "failed", "not started")
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "CONFIGURING"}


def record_of(output: Path, run: Run) -> Optional[Dict[str, Any]]:
    """The record (``test_metrics.json``) of a finished run, or ``None``."""
    path = Path(output) / run.folder / "test_metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def code_of(record: Dict[str, Any]) -> Optional[str]:
    """The sources hash of the code that made a record (``None`` for records made before runs
    recorded their code)."""
    return record.get("provenance", {}).get("code", {}).get("sources_sha256")


def set_aside(output: Path, run: Run) -> Path:
    """Move a stale run's folder to ``runs/<key>.stale-<n>`` (kept, out of the plan's way)."""
    folder = Path(output) / run.folder
    n = 1
    while folder.with_name(f"{folder.name}.stale-{n}").exists():
        n += 1
    target = folder.with_name(f"{folder.name}.stale-{n}")
    folder.rename(target)
    return target


def write_job(output: Path, run: Run, **info: Any) -> None:
    """Remember how a run was sent (``executor``, ``job_id`` or ``pid``, logs)."""
    write_json(Path(output) / run.folder / "job.json", dict(info, submitted=time.time()))


def read_job(output: Path, run: Run) -> Optional[Dict[str, Any]]:
    path = Path(output) / run.folder / "job.json"
    return json.loads(path.read_text()) if path.is_file() else None


def slurm_states() -> Dict[str, str]:
    """The queue's job states by job id (``squeue``; accounting may be off, so not ``sacct``);
    empty when there is no scheduler."""
    try:
        done = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if done.returncode != 0:
        return {}
    return dict(line.split(maxsplit=1) for line in done.stdout.splitlines() if line.strip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _log_of(output: Path, run: Run, job: Dict[str, Any]) -> str:
    return job.get("log") or str(Path(output) / run.folder / "train.log")


def statuses(output: Path, runs: Sequence[Run], code: str, queue: Optional[Dict[str, str]] = None) -> List[Tuple[str, Run, str]]:
    """``(state, run, detail)`` for each run: one of :data:`STATES`; the detail is the log of a
    failed run, the job of a queued or running one, the code of a stale one."""
    queue = slurm_states() if queue is None else queue
    result = []
    for run in runs:
        record = record_of(output, run)
        job = read_job(output, run) or {}
        if record is not None:
            made_by = code_of(record)
            if made_by == code:
                result.append(("finished", run, ""))
            else:
                result.append(("stale", run, f"made by code {made_by[:12] if made_by else 'not recorded'}"))
            continue
        if not job:
            result.append(("not started", run, ""))
        elif job.get("job_id") is not None and str(job["job_id"]) in queue:
            state = queue[str(job["job_id"])]
            result.append(("queued" if state in QUEUED else "running", run, f"job {job['job_id']} ({state})"))
        elif job.get("pid") is not None and _alive(int(job["pid"])):
            result.append(("running", run, f"pid {job['pid']}"))
        else:
            result.append(("failed", run, f"log: {_log_of(output, run, job)}"))
    return result


def check_equal_time_hardware(output: Path, runs: Sequence[Run]) -> None:
    """Raise ``ValueError`` (one line) when an equal-time run and the run whose time it got ran on
    different kinds of machine (records without hardware, made before it was recorded, pass)."""
    by_key = {r.key: r for r in runs}
    for run in runs:
        if run.time_of is None:
            continue
        mine, theirs = record_of(output, run), record_of(output, by_key[run.time_of])
        if mine is None or theirs is None:
            continue
        a, b = mine.get("provenance", {}).get("hardware"), theirs.get("provenance", {}).get("hardware")
        if a and b and not same_hardware(a, b):
            raise ValueError(
                f"compare: {run.name} ran on {a.get('cpu')} / {a.get('gpu', 'no GPU')} but the run whose time it got on "
                f"{b.get('cpu')} / {b.get('gpu', 'no GPU')}: equal time needs the same hardware; delete {Path(output) / run.folder} to redo it"
            )
