"""How long a training has trained, across all its invocations (:class:`TrainingClock`).

The clock runs from the start of the first training step to the end of training in each
invocation and is stored in every checkpoint (Lightning keeps a callback's state there), so a
resumed training goes on from the total of its checkpoint. What a killed invocation did after
its last checkpoint (a partial epoch that the resumed run trains again) is not counted: the
clock counts the training the model kept. Epochs are Lightning's ``current_epoch`` at the end
(completed epochs, all invocations: a resume restores it).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

from lightning.pytorch.callbacks import Callback

__all__ = ["TrainingClock"]


class TrainingClock(Callback):
    """Cumulative training seconds and epochs of a run (see the module docstring)."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds of earlier invocations (from the checkpoint resumed)
        self._started: Optional[float] = None
        self._stopped: Optional[float] = None
        self.epochs = 0

    @property
    def seconds(self) -> float:
        """Training seconds so far, all invocations together."""
        if self._started is None:
            return self.before
        end = self._stopped if self._stopped is not None else time.perf_counter()
        return self.before + end - self._started

    def on_train_start(self, trainer, pl_module) -> None:
        self._started, self._stopped = time.perf_counter(), None

    def on_train_end(self, trainer, pl_module) -> None:
        self._stopped = time.perf_counter()
        self.epochs = int(trainer.current_epoch)

    def state_dict(self) -> Dict[str, Any]:
        return {"seconds": self.seconds, "epochs": self.epochs}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.before = float(state_dict["seconds"])
        self._started = self._stopped = None
