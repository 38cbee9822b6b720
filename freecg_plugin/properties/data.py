"""The molecules a property training uses: QM9-format molecules from a dataset name or a file,
split into train / validation / test as a :class:`~freecg_plugin.data.config.DataConfig` says."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import torch

from ..data.config import DataConfig
from ..data.registry import dataset, locate
from .qm9 import PropertyData, load_qm9

__all__ = ["load_property_data"]


def _source(d: DataConfig) -> Path:
    if d.dataset is None:
        return Path(d.train)
    entry = dataset(d.dataset)
    if entry.format != "qm9-npz":
        raise ValueError(f"dataset {d.dataset} ({entry.format}) holds no molecular properties; use qm9/subset10k or qm9/qm9pack")
    return locate(d.dataset) / entry.files[0].path


def load_property_data(d: DataConfig, targets: Sequence[str]) -> Tuple[PropertyData, PropertyData, PropertyData]:
    """``(train, val, test)`` molecules, drawn with seed ``d.seed``: ``n_train`` (default: all
    that are left), ``n_val`` (or ``val_fraction``), ``n_test`` (default: the rest).

    Raises:
        ValueError: unknown targets or elements, or a set that would be empty; before training.
    """
    data = load_qm9(_source(d), targets)
    n_val = d.n_val if d.n_val is not None else max(1, round((d.val_fraction or 0.1) * len(data)))
    n_test = d.n_test if d.n_test is not None else len(data) - n_val - (d.n_train or 0)
    n_train = d.n_train if d.n_train is not None else len(data) - n_val - n_test
    if n_train < 1 or n_test < 1 or n_train + n_val + n_test > len(data):
        raise ValueError(f"{data.source}: {n_train} train + {n_val} validation + {n_test} test molecules asked, {len(data)} available")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(d.seed)).tolist()
    return (
        data.subset(order[:n_train]),
        data.subset(order[n_train : n_train + n_val]),
        data.subset(order[n_train + n_val : n_train + n_val + n_test]),
    )
