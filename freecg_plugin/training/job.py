"""What a task hands the trainer (:class:`Job`): its Lightning module, loaders, how to test the
best checkpoint and what to add to the run's record. The trainer
(:func:`~freecg_plugin.training.trainer.train`) does the rest, the same for every task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import lightning as L
from torch.utils.data import DataLoader

__all__ = ["Job"]


@dataclass
class Job:
    """One training, prepared.

    Attributes:
        task: the Lightning module (its ``model`` is what is trained).
        train_loader, val_loader: the batches.
        what: the data in words, for the start line (``on 150 frames (50 validation, 100 test)``).
        test: ``test(checkpoint) -> metrics`` of the test data (prints its table, writes its plots).
        record: added to ``test_metrics.json`` (``data_fingerprint``, ``unit``...).
        curve_unit: the unit of the learning-curve plot's validation error.
        evaluate_weights: ``evaluate_weights(state_dict) -> {name: error}`` of the tested model
            with other weights (a snapshot), on the validation and test data; ``None`` where the
            task has no time-to-accuracy curves.
    """

    task: L.LightningModule
    train_loader: DataLoader
    val_loader: DataLoader
    what: str
    test: Callable[[str], Dict[str, Any]]
    record: Dict[str, Any] = field(default_factory=dict)
    curve_unit: str = ""
    evaluate_weights: Optional[Callable[[Dict[str, Any]], Dict[str, float]]] = None
