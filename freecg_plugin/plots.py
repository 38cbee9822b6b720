"""PNG figures of the project (matplotlib, no screen): every figure is written atomically through
:func:`save_png`; :func:`plot_parity` is the prediction-against-reference plot of every test."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from .files import write_atomic

__all__ = ["plot_parity", "pyplot", "save_png"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` as PNG (atomically) and close it."""
    write_atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(fig)


def plot_parity(pred: Tensor, ref: Tensor, path, title: str, xlabel: str, ylabel: str, size: float = 4.5) -> None:
    """Predicted against reference values (every component), with the diagonal."""
    plt = pyplot()
    x, y = ref.reshape(-1).double().numpy(), pred.reshape(-1).double().numpy()
    fig, ax = plt.subplots(figsize=(size, size))
    ax.scatter(x, y, s=2 if x.size > 2000 else 3, alpha=0.4)
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.tight_layout()
    save_png(fig, path)
