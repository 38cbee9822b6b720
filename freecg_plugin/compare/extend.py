"""Longer time-to-accuracy curves from shorter ones: when a plan's curve horizon grows, each curve
run goes on from the finished run of the same settings at a shorter horizon instead of training
again from the start, so only the extra time is trained.

That is sound because nothing of a curve run depends on its horizon but where it stops: the
learning rate follows the plateau schedule on the validation loss, the EMA has a fixed decay, the
order of each epoch depends on the seed and the epoch only, and the training clock is stored in
the checkpoint. The first part of the longer curve is the shorter run's curve (its weight
snapshots are kept); the training goes on from its last checkpoint, as any interrupted run does.

The shorter run's folder is left as it is: its checkpoints, weight snapshots and logs are copied
into a new folder that becomes the longer run's only when the copy is complete, with
``continues.json`` naming the source (its key, its horizon and the code that made it).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from ..files import write_json
from .plan import Run
from .records import code_of

__all__ = ["HORIZON_KEYS", "continue_from", "shorter_run"]

HORIZON_KEYS = ("max_time_s", "curve_points_s")
"""The settings of a curve run that its horizon decides."""


def _settings(config: Dict[str, Any]) -> Dict[str, Any]:
    """A run's settings without its horizon (and without its output folder)."""
    settings = copy.deepcopy({k: v for k, v in config.items() if k != "output"})
    for key in HORIZON_KEYS:
        settings.get("optim", {}).pop(key, None)
    return settings


def _times_kept(source: Dict[str, Any], target: Dict[str, Any]) -> bool:
    """Whether every snapshot time of ``target`` within ``source``'s horizon is one of ``source``'s:
    a time between them would otherwise be filled with weights of a later time."""
    horizon = float(source["optim"]["max_time_s"])
    saved = {float(t) for t in source["optim"].get("curve_points_s") or []}
    return all(float(t) in saved for t in target["optim"].get("curve_points_s") or [] if float(t) < horizon)


def shorter_run(output: Path, run: Run, code: str, accept_stale: bool = False) -> Optional[Path]:
    """The folder of the finished run under ``output/runs`` that ``run`` (a curve run) can go on
    from: the same settings, a shorter horizon (the longest such), snapshot times that agree, a
    last checkpoint, and made by the code ``code`` (any code with ``accept_stale``); ``None`` when
    there is none."""
    if run.budget != "curve":
        return None
    horizon, best, best_horizon = float(run.config["optim"]["max_time_s"]), None, 0.0
    wanted = _settings(run.config)
    for folder in sorted(Path(output, "runs").glob("*/")):
        record_path, config_path = folder / "test_metrics.json", folder / "config.yaml"
        if not (record_path.is_file() and config_path.is_file() and (folder / "checkpoints" / "last.ckpt").is_file()):
            continue
        config = yaml.safe_load(config_path.read_text())
        theirs = float((config.get("optim") or {}).get("max_time_s") or 0.0)
        if not (best_horizon < theirs < horizon) or _settings(config) != wanted or not _times_kept(config, run.config):
            continue
        if accept_stale or code_of(json.loads(record_path.read_text())) == code:
            best, best_horizon = folder, theirs
    return best


def continue_from(source: Path, target: Path) -> None:
    """Make ``target`` (a run folder that does not exist yet) the start of a longer run from the
    finished run in ``source``: its checkpoints, snapshots and logs, and ``continues.json``.
    The folder appears whole or not at all (a copy beside it, then a rename)."""
    if target.exists():
        raise FileExistsError(f"compare: {target} exists: a run goes on from a shorter one only into a new folder")
    partial = target.with_name(f".{target.name}.continuing")
    shutil.rmtree(partial, ignore_errors=True)  # an earlier copy that was interrupted
    partial.mkdir(parents=True)
    for name in ("checkpoints", "snapshots", "logs"):
        if (source / name).is_dir():
            shutil.copytree(source / name, partial / name)
    record = json.loads((source / "test_metrics.json").read_text())
    config = yaml.safe_load((source / "config.yaml").read_text())
    write_json(
        partial / "continues.json",
        {"from": source.name, "horizon_s": float(config["optim"]["max_time_s"]), "code": code_of(record)},
    )
    partial.rename(target)
