"""The PNG figures of comparisons: test errors as grouped bars per host and learning curves per
host (``freecg compare``), stable time and speed per system (``freecg md-compare``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..plots import pyplot, save_png
from ..training.curves import epoch_curves

__all__ = ["plot_epoch_curves", "plot_errors", "plot_md_comparison"]


def metric_name(metric: str) -> str:
    """``forces_mae`` -> ``force MAE``; ``U0_mae`` -> ``U0 MAE``."""
    return "force MAE" if metric == "forces_mae" else f"{metric[: -len('_mae')]} MAE"


BARS = (
    ("host", "epochs", "host, equal epochs"),
    ("host", "time", "host, equal time"),
    ("host", "parameters", "host, equal parameters"),
    ("host + FreeCG", "epochs", "host + FreeCG"),
)


def plot_errors(rows: List[Dict[str, Any]], metrics: Sequence[str], unit: Optional[str], path: Path) -> None:
    """Per compared metric, grouped bars per host (mean ± std over seeds); each host shows the
    bars it has, side by side."""
    plt = pyplot()
    hosts = [h for h in dict.fromkeys(r["host"] for r in rows) if any(r["host"] == h and r["variant"] == "host + FreeCG" for r in rows)]
    index = {(r["host"], r["variant"], r["budget"]): r for r in rows}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5, 1.9 * len(hosts)) * len(metrics), 3.8), squeeze=False)
    width = 0.8 / len(BARS)
    for ax, metric in zip(axes[0], metrics):
        labelled = set()
        for h, host in enumerate(hosts):
            present = [
                (b, index[(host, variant, budget)]) for b, (variant, budget, _) in enumerate(BARS) if (host, variant, budget) in index
            ]
            for slot, (b, row) in enumerate(present):
                x = h + (slot - (len(present) - 1) / 2) * width
                name = BARS[b][2]
                ax.bar(
                    x, row[metric]["mean"], width, yerr=row[metric]["std"], capsize=3, color=colors[b % len(colors)],
                    label=None if name in labelled else name,
                )  # fmt: skip
                labelled.add(name)
        ax.set_xticks(range(len(hosts)), hosts)
        ax.set_ylabel(f"test force MAE ({unit or 'energy unit'}/Å)" if metric == "forces_mae" else f"test {metric_name(metric)}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def plot_epoch_curves(curves: Sequence[Tuple[str, str, int, Path]], path: Path, unit: Optional[str], key: str = "val_forces_mae") -> None:
    """One panel per label: the validation curve ``key`` of every ``(label, variant, seed,
    logs folder)`` against epochs."""
    plt = pyplot()
    labels = sorted({label for label, _, _, _ in curves})
    fig, axes = plt.subplots(1, len(labels), figsize=(3.4 * len(labels), 3.0), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for mine, variant, seed, logs in curves:
            curve = epoch_curves(logs, (key,)).get(key) if mine == label else None
            if curve:
                ax.plot(list(curve), list(curve.values()), label=f"{variant} (seed {seed})")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel(
        f"validation force MAE ({unit or 'energy unit'}/Å)" if key == "val_forces_mae" else "validation loss (standardised)"
    )
    fig.tight_layout()
    save_png(fig, path)


def plot_md_comparison(rows: List[Dict[str, Any]], arms: Sequence[str], path: Path) -> None:
    """Stable time and speed per system and arm: bars (mean ± std over seeds), dots (seeds)."""
    plt = pyplot()
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.38
    for k, arm in enumerate(arms):
        mine = {r["system"]: r for r in rows if r["arm"] == arm}
        xs = [i + (k - 0.5) * width for i, s in enumerate(systems) if s in mine]
        for ax, key in zip(axes, ("stable_time_ps", "ns_per_day")):
            stats = [mine[s][key] for s in systems if s in mine]
            ax.bar(xs, [s["mean"] for s in stats], width, yerr=[s["std"] for s in stats], label=arm, capsize=3)
            for x, s in zip(xs, stats):
                ax.scatter([x] * len(s["values"]), s["values"], color="black", s=8, zorder=3)
    for ax, label in zip(axes, ("stable time (ps)", "speed (ns/day)")):
        ax.set_xticks(range(len(systems)), systems)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("MD: host vs host + FreeCG (bars: mean ± std over seeds; dots: seeds)")
    fig.tight_layout()
    save_png(fig, path)
