"""One line per epoch for a training whose output is not a terminal (a batch job's log file, a
``freecg compare`` run's ``train.log``), where a progress bar would print nothing readable::

    epoch 12/40  train_loss 0.0513  val_loss 0.0462  val_forces_mae 1.93  val_energy_mae 0.27  71 s, ~166 s left
"""

from __future__ import annotations

from typing import Optional

from lightning.pytorch.callbacks import Callback

from .clock import TrainingClock

__all__ = ["EpochLines"]

SHOWN = ("train_loss", "val_loss")
"""Shown first; then every other validation error the task logs."""


class EpochLines(Callback):
    """Print the epoch, its losses and validation errors, the training clock and the time left
    (by the epochs left at the mean epoch time so far, or by the time budget, whichever ends first).

    Args:
        clock: the run's training clock (all invocations together).
        max_epochs: the epoch budget.
        max_seconds: the time budget (``None``: none).
    """

    def __init__(self, clock: TrainingClock, max_epochs: int, max_seconds: Optional[float] = None) -> None:
        self.clock, self.max_epochs, self.max_seconds = clock, max_epochs, max_seconds

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # after the epoch's validation
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        done = trainer.current_epoch + 1
        names = [n for n in SHOWN if n in metrics] + sorted(n for n in metrics if n.startswith("val_") and n not in SHOWN)
        seconds = self.clock.seconds
        left = (self.max_epochs - done) * seconds / done
        if self.max_seconds is not None:
            left = min(left, max(self.max_seconds - seconds, 0.0))
        values = "  ".join(f"{name} {float(metrics[name]):.4g}" for name in names)
        print(f"epoch {done}/{self.max_epochs}  {values}  {_seconds(seconds)}, ~{_seconds(left)} left", flush=True)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
