"""Weights saved along a training for a time-to-accuracy curve (:class:`WeightSnapshots`).

At each of the given training-clock times (:class:`~freecg_plugin.training.clock.TrainingClock`:
wall seconds of training, stopped time taken out), the weights as tested (the EMA model when the
recipe keeps one, else the model) are saved to ``OUTPUT/snapshots/<seconds>.pt`` with the clock,
the CPU seconds, the epoch and the step; the last weights are saved when training ends. Saving
is not training: the clock is paused while a snapshot is written. They are evaluated after
training (:func:`~freecg_plugin.training.trainer.train`), so evaluation costs the clock nothing.
Files are written whole (temporary file, then rename); a resumed training keeps its snapshots and
goes on with the times still ahead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch
from lightning.pytorch.callbacks import Callback

from ..files import write_serialized
from .clock import TrainingClock

__all__ = ["WeightSnapshots", "log_spaced_times", "read_snapshot", "snapshot_files"]


def log_spaced_times(first: float, horizon: float, factor: float = 2.0) -> List[float]:
    """``first, first * factor, ...`` below ``horizon``, then ``horizon`` (seconds)."""
    if not (first > 0 and horizon >= first and factor > 1):
        raise ValueError(f"snapshot times need 0 < first <= horizon and factor > 1, got {first}, {horizon}, {factor}")
    times, t = [], float(first)
    while t < horizon * (1 - 1e-9):
        times.append(round(t, 3))
        t *= factor
    return times + [float(horizon)]


def snapshot_files(output) -> List[Path]:
    """The snapshots of a run folder, in clock order."""
    return sorted(Path(output, "snapshots").glob("*.pt"), key=lambda p: float(p.stem))


def read_snapshot(path) -> Dict[str, Any]:
    """``{"state_dict": ..., "seconds": ..., "cpu_seconds": ..., "epoch": ..., "step": ...}``
    (tensors and plain numbers only: loaded with ``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class WeightSnapshots(Callback):
    """Save the tested weights when the training clock passes each of ``times`` (seconds), and at
    the end of training.

    Args:
        output: the run folder (snapshots go to ``output/snapshots``).
        times: clock seconds, increasing.
        clock: the run's training clock.
    """

    def __init__(self, output, times: Sequence[float], clock: TrainingClock) -> None:
        self.folder = Path(output) / "snapshots"
        self.times, self.clock = sorted(float(t) for t in times), clock

    def on_train_start(self, trainer, pl_module) -> None:
        saved = {float(p.stem) for p in snapshot_files(self.folder.parent)}
        self._pending = [t for t in self.times if t not in saved]
        self._last_step = -1

    def _save(self, trainer, pl_module, name: float) -> None:
        with self.clock.paused():
            model = pl_module.inference_model
            record = {
                "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                "seconds": float(self.clock.seconds),
                "cpu_seconds": float(self.clock.cpu_seconds),
                "epoch": int(trainer.current_epoch),
                "step": int(trainer.global_step),
            }
            write_serialized(self.folder / f"{name:010.1f}.pt", lambda buffer: torch.save(record, buffer))
        self._last_step = int(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero and self._pending and self.clock.seconds >= self._pending[0]:
            while self._pending and self.clock.seconds >= self._pending[0]:
                name = self._pending.pop(0)
            self._save(trainer, pl_module, name)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self._last_step != trainer.global_step:
            self._save(trainer, pl_module, round(self.clock.seconds, 1))  # training ended before the horizon
