"""Learning curves of a training: per-epoch values from its CSV logs (one ``version_*`` per
invocation) and their PNG plot."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict

from ..plots import pyplot, save_png

__all__ = ["epoch_curves", "plot_learning_curves"]


def epoch_curves(logs: Path, keys=("train_loss", "val_loss", "val_forces_mae")) -> Dict[str, Dict[int, float]]:
    """Per-epoch values of ``keys`` from every CSV log under ``logs`` (``version_*``, one per
    invocation: a resumed run appends a version), later versions winning."""
    curves: Dict[str, Dict[int, float]] = {}
    for metrics_csv in sorted(Path(logs).glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        with open(metrics_csv) as handle:
            for row in csv.DictReader(handle):
                for key in keys:
                    if row.get(key):
                        curves.setdefault(key, {})[int(row["epoch"])] = float(row[key])
    return curves


def plot_learning_curves(logs: Path, path: Path, unit: str) -> None:
    """Training and validation loss (log scale) and the validation force MAE against epochs."""
    plt = pyplot()
    curves = epoch_curves(logs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "val_loss"):
        if key in curves:
            left.plot(list(curves[key]), list(curves[key].values()), label=key)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    if "val_forces_mae" in curves:
        right.plot(list(curves["val_forces_mae"]), list(curves["val_forces_mae"].values()))
    right.set_xlabel("epoch")
    right.set_ylabel(f"validation force MAE ({unit}/Å)")
    fig.tight_layout()
    save_png(fig, path)
