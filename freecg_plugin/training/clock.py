"""How long a training has trained, across all its invocations (:class:`TrainingClock`).

The clock counts wall-clock seconds from the start of the first training step to the end of
training in each invocation, with the time the process was stopped taken out (``kill -STOP``
while something else runs on the machine: a heartbeat thread sees the gap), and records the
process's CPU seconds beside it as a cross-check. Validation epochs count (a user pays for them);
evaluations outside ``fit`` do not. Its state is stored in every checkpoint (Lightning keeps a
callback's state there), so a resumed training goes on from the total of its checkpoint. What a
killed invocation did after its last checkpoint (a partial epoch that the resumed run trains
again) is not counted: the clock counts the training the model kept. Epochs are Lightning's
``current_epoch`` at the end (completed epochs, all invocations: a resume restores it).

``max_seconds`` stops the training once the clock reaches it (checked after every step): an
equal-time budget measured the same way as the run it is equal to.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Dict, Optional

from lightning.pytorch.callbacks import Callback

__all__ = ["PausableClock", "TrainingClock"]


class PausableClock:
    """Wall-clock seconds since :meth:`start` without the time the process was stopped, and the
    process's CPU seconds. A daemon thread ticks every ``tick`` seconds; a gap of more than
    ``gap`` seconds between two ticks is time the process did not run."""

    def __init__(self, tick: float = 0.05, gap: float = 1.0) -> None:
        self.tick, self.gap = tick, gap
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.started = self.stopped_for = self.cpu_started = 0.0

    def start(self) -> None:
        with self._lock:
            self.started, self.stopped_for, self.cpu_started = time.monotonic(), 0.0, time.process_time()
            self._last = self.started
        self._running.set()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while self._running.is_set():
            time.sleep(self.tick)
            self._account()

    def _account(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last > self.gap:
                self.stopped_for += now - self._last - self.tick
            self._last = now

    @contextmanager
    def paused(self):
        """A block whose time does not count (saving a snapshot is not training)."""
        self._account()
        begun, stopped = time.monotonic(), self.stopped_for
        try:
            yield
        finally:
            self._account()
            with self._lock:  # what the heartbeat has not already taken out
                self.stopped_for += max(time.monotonic() - begun - (self.stopped_for - stopped), 0.0)

    def stop(self) -> None:
        self._account()
        self._running.clear()
        if self._thread is not None:
            self._thread.join()

    @property
    def seconds(self) -> float:
        """Running seconds since :meth:`start`."""
        self._account()
        return time.monotonic() - self.started - self.stopped_for

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of the process since :meth:`start` (all threads)."""
        return time.process_time() - self.cpu_started


class TrainingClock(Callback):
    """Cumulative training seconds and CPU seconds of a run (see the module docstring).

    Args:
        max_seconds: stop training once this many seconds are reached (``None``: no limit).
    """

    def __init__(self, max_seconds: Optional[float] = None) -> None:
        self.max_seconds = max_seconds
        self.before = self.cpu_before = 0.0  # earlier invocations (from the checkpoint resumed)
        self._clock: Optional[PausableClock] = None
        self._final: Optional[tuple] = None

    @property
    def seconds(self) -> float:
        """Training seconds so far, all invocations together."""
        if self._final is not None:
            return self._final[0]
        return self.before + (self._clock.seconds if self._clock is not None else 0.0)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of training so far, all invocations together."""
        if self._final is not None:
            return self._final[1]
        return self.cpu_before + (self._clock.cpu_seconds if self._clock is not None else 0.0)

    def paused(self):
        """A block whose time does not count (see :meth:`PausableClock.paused`)."""
        return self._clock.paused() if self._clock is not None else nullcontext()

    def on_train_start(self, trainer, pl_module) -> None:
        self._final = None
        self._clock = PausableClock()
        self._clock.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.max_seconds is not None:  # rank 0 decides for all processes (DDP)
            trainer.should_stop = trainer.should_stop or bool(trainer.strategy.broadcast(self.seconds >= self.max_seconds))

    def on_train_end(self, trainer, pl_module) -> None:
        self._final = (self.seconds, self.cpu_seconds)
        if self._clock is not None:
            self._clock.stop()

    def state_dict(self) -> Dict[str, Any]:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.before = float(state_dict["seconds"])
        self.cpu_before = float(state_dict.get("cpu_seconds", 0.0))
        self._clock, self._final = None, None
