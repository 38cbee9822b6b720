"""Test metrics table and PNG plots (force parity, learning curves). Files are written to a
temporary name and renamed, so an earlier report is never left half-written."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Dict

from torch import Tensor

from ..data.units import convert_energy

__all__ = ["epoch_curves", "metrics_table", "plot_learning_curves", "plot_parity", "write_atomic"]


def write_atomic(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and rename the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def metrics(pred: Dict[str, Tensor], ref: Dict[str, Tensor], unit: str) -> Dict[str, float]:
    """Energy, force (and stress, when both have it) MAE/RMSE in ``unit`` (/Å, /Å^3) and in meV."""
    out = {}
    for key in [k for k in ("energy", "forces", "stress") if k in pred and k in ref]:
        err = (pred[key] - ref[key]).double()
        mae, rmse = err.abs().mean().item(), err.square().mean().sqrt().item()
        out[f"{key}_mae"], out[f"{key}_rmse"] = mae, rmse
        out[f"{key}_mae_meV"], out[f"{key}_rmse_meV"] = convert_energy(mae, unit, "meV"), convert_energy(rmse, unit, "meV")
    return out


def metrics_table(values: Dict[str, float], unit: str, title: str) -> str:
    rows = [f"{title}", "", f"| quantity | MAE ({unit}) | RMSE ({unit}) | MAE (meV) | RMSE (meV) |", "|---|---|---|---|---|"]
    for key, name in (("energy", "energy"), ("forces", "forces (per Å)"), ("stress", "stress (per Å^3)")):
        if key + "_mae" not in values:
            continue
        rows.append(
            f"| {name} | {values[key + '_mae']:.4f} | {values[key + '_rmse']:.4f} | "
            f"{values[key + '_mae_meV']:.2f} | {values[key + '_rmse_meV']:.2f} |"
        )
    return "\n".join(rows) + "\n"


def save_metrics(values: Dict[str, float], path: Path) -> None:
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(values, indent=2)))


def plot_parity(pred: Tensor, ref: Tensor, unit: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = ref.reshape(-1).double().numpy(), pred.reshape(-1).double().numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(x, y, s=2, alpha=0.4)
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"reference force component ({unit}/Å)")
    ax.set_ylabel(f"predicted ({unit}/Å)")
    ax.set_title(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
