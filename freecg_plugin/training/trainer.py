"""The trainer (what ``freecg train`` runs): one skeleton for every task — prepare, fit, time,
save, test, report — with the task (:mod:`~freecg_plugin.training.potential` or
:mod:`~freecg_plugin.training.properties`) plugged in as a :class:`~freecg_plugin.training.job.Job`.

The record (``test_metrics.json``) counts every epoch and every second of training across all
the invocations of a resumed run (:class:`~freecg_plugin.training.clock.TrainingClock`).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import lightning as L
import torch

from ..checkpoint import read_checkpoint
from ..configs.train import TrainConfig
from ..evaluation import torch_device
from ..files import check_writable, write_json
from ..nn import prepare_kernels
from ..provenance import provenance
from .clock import TrainingClock
from .curves import plot_learning_curves
from .job import Job
from .potential import prepare_potential
from .progress import EpochLines
from .properties import prepare_properties
from .snapshots import WeightSnapshots, read_snapshot, snapshot_files

__all__ = ["TASKS", "peak_memory_mb", "train", "trainer_for", "write_curve"]

TASKS: Dict[str, Callable[[TrainConfig], Job]] = {"potential": prepare_potential, "properties": prepare_properties}
"""``TrainConfig.task`` -> how to prepare its job."""


def peak_memory_mb() -> float:
    """Peak memory of this process: GPU memory allocated when on CUDA, else resident set size."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def trainer_for(
    config: TrainConfig, output: Path, max_epochs: int, callbacks: Optional[List] = None, logger: bool = True, progress_bar: bool = True
) -> L.Trainer:
    """The Lightning trainer of a config: CSV (and TensorBoard, when installed) logs, the best and
    the last checkpoint (``optim.max_time_s`` is the training clock's, see :func:`train`). No
    model summary (the run's start line counts the parameters once; Lightning's table would count
    the EMA copy as well)."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    # a new version per invocation: CSVLogger would replace an existing version's metrics on resume
    loggers = [CSVLogger(output, name="logs")] if logger else False
    if logger:
        try:
            import tensorboard  # noqa: F401
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(output, name="tensorboard"))
        except ImportError:
            pass
    checkpoint = ModelCheckpoint(dirpath=output / "checkpoints", filename="best", monitor="val_loss", save_last=True)
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    # in a SLURM job, requeueing is the job's (freecg compare's jobs: submitit), never Lightning's as well
    plugins = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None
    return L.Trainer(
        plugins=plugins,
        max_epochs=max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        logger=loggers,
        callbacks=[checkpoint, *(callbacks or [])],
        inference_mode=False,  # forces need autograd in validation and test
        gradient_clip_val=config.optim.gradient_clip,
        log_every_n_steps=1,
        deterministic=config.optim.deterministic,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
    )


def write_curve(output: Path, job: Job) -> List[Dict[str, Any]]:
    """Evaluate every weight snapshot of the run (after training: it costs the clock nothing) and
    write ``curve.json``: per snapshot its clock and CPU seconds, epoch, step and errors."""
    points = []
    for path in snapshot_files(output):
        snapshot = read_snapshot(path)
        point = {"time_s": float(path.stem), **{k: snapshot[k] for k in ("seconds", "cpu_seconds", "epoch", "step")}}
        points.append({**point, **job.evaluate_weights(snapshot["state_dict"])})
    write_json(output / "curve.json", {"points": points})
    print(f"curve: {len(points)} snapshots evaluated -> {output / 'curve.json'}", flush=True)
    return points


def train(config: TrainConfig, resume: Optional[str] = None, max_epochs: Optional[int] = None) -> Dict[str, Any]:
    """Train, keep the best checkpoint on validation loss, then test it; returns the test metrics
    with the run's record (under DDP: on rank 0; the other processes return an empty mapping
    after training).

    Every check on the data (files, units, keys, frame counts, elements, stress labels) runs
    before the first step."""
    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    output = Path(config.output)
    check_writable(output, "output folder")
    if resume is not None:
        if not Path(resume).is_file():
            raise FileNotFoundError(f"{resume}: no such checkpoint to resume from")
        read_checkpoint(resume)  # one line for a file that is not a checkpoint or needs unpickling
    job = TASKS[config.task](config)
    epochs = max_epochs if max_epochs is not None else config.optim.max_epochs
    clock = TrainingClock(config.optim.max_time_s)
    callbacks = [clock]
    if config.optim.curve_points_s:
        if job.evaluate_weights is None:
            raise ValueError(f"optim.curve_points_s: task {config.task} has no time-to-accuracy curves")
        callbacks.append(WeightSnapshots(output, config.optim.curve_points_s, clock))
    progress_bar = sys.stdout.isatty()
    if not progress_bar:  # a log file: one line per epoch instead of a bar
        callbacks.append(EpochLines(clock, epochs, config.optim.max_time_s))
    trainer = trainer_for(config, output, epochs, callbacks, progress_bar=progress_bar)
    if torch_device(config.accelerator).type == "cpu":
        prepare_kernels(job.task.model)  # the group CG kernel's one-time build is not training: before the clock starts
    parameters = sum(p.numel() for p in job.task.model.parameters())
    print(f"training {parameters:,} parameters {job.what} for {epochs} epochs -> {output}", flush=True)
    trainer.fit(job.task, job.train_loader, job.val_loader, ckpt_path=resume, weights_only=True)
    trainer.save_checkpoint(output / "checkpoints" / "last.ckpt")  # the end of the run, for --resume (all ranks: a collective)
    if not trainer.is_global_zero:  # DDP: the other processes stop here; rank 0 tests and reports
        return {}
    # epochs done, all invocations together (a resume from the end of a run trains none and keeps the count)
    seconds, done = clock.seconds, max(int(trainer.current_epoch), 1)
    print(f"trained {done} epochs in {seconds:.1f} s ({seconds / done:.2f} s/epoch), all invocations together", flush=True)
    best = trainer.checkpoint_callback.best_model_path or str(output / "checkpoints" / "last.ckpt")
    results = job.test(best)
    results.update(
        seconds_per_epoch=seconds / done,
        train_seconds=seconds,
        train_cpu_seconds=clock.cpu_seconds,
        epochs=done,
        parameters=parameters,
        peak_memory_mb=peak_memory_mb(),
        seed=config.optim.seed,
        provenance=provenance(),
        **job.record,
    )
    if config.optim.curve_points_s:
        write_curve(output, job)
    write_json(output / "test_metrics.json", results, indent=2)
    plot_learning_curves(output / "logs", output / "learning_curves.png", job.curve_unit)
    return results
