"""Which frames a training uses: :class:`DataConfig`, checked when built (one-line errors, before
any work)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

__all__ = ["DataConfig"]


@dataclass
class DataConfig:
    """Which frames: a dataset by name, or the user's own files.

    Attributes:
        dataset: a registry name (``freecg data list``), e.g. ``rmd17/aspirin`` (official split
            ``split``: train file -> train/val frames, test file -> test frames) or
            ``water/deepmd64`` (one file: train, val and test frames drawn from it).
        split: rMD17 split, ``1`` to ``5`` or ``"01"`` to ``"05"``.
        train, val, test: the user's files (extxyz, npz, ASE database...), instead of
            ``dataset``; relative paths in a config file are relative to that file. ``val`` and
            ``test`` may be left out: their frames are then drawn from ``train``.
        val_fraction: share of the training frames held out for validation (instead of
            ``n_val`` or a ``val`` file).
        energy_unit: unit of the files' energies (required for the user's files); ``train_unit``:
            unit for training and reports (``null``: the data's).
        keys: our names (``energy, forces, stress``; for npz also ``numbers, positions, cell``)
            -> the file's keys.
        n_train, n_val, n_test: frame counts (``null``: all that are left / none asked / all).
        seed: shuffles the training frames before train/val frames are taken.
        reference_energies: per-element energies subtracted before training and added back in
            every prediction: a mapping ``{H: -13.6, O: -432.1}`` (symbols or atomic numbers, in
            ``energy_unit``), ``fit`` (least squares on the training frames), ``none``, or
            ``auto`` (``fit`` when the training frames differ in composition, else ``none``).
        cache_graphs: keep each frame's neighbour list after its first batch (about 11 bytes per
            edge: 1e5 frames of 5,000 edges take 5.5 GB); ``false`` rebuilds them for every batch.
    """

    dataset: Optional[str] = None
    split: Any = "01"
    train: Optional[str] = None
    val: Optional[str] = None
    test: Optional[str] = None
    val_fraction: Optional[float] = None
    energy_unit: Optional[str] = None
    train_unit: Optional[str] = None
    keys: Optional[Dict[str, str]] = None
    n_train: Optional[int] = None
    n_val: Optional[int] = None
    n_test: Optional[int] = None
    seed: int = 0
    reference_energies: Any = "auto"
    cache_graphs: bool = True

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.train is None):
            raise ValueError("data: give either `dataset` (a name, see `freecg data list`) or `train` (a file)")
        if self.dataset is not None and (self.val is not None or self.test is not None):
            raise ValueError("data: `val` and `test` files go with `train`, not with `dataset`")
        given = [
            name for name, value in (("val", self.val), ("val_fraction", self.val_fraction), ("n_val", self.n_val)) if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"data: give one of val, val_fraction, n_val (got {given})")
        if not given:
            raise ValueError("data: no validation frames: set data.val (a file), data.val_fraction or data.n_val")
        if self.val_fraction is not None and not 0 < float(self.val_fraction) < 1:
            raise ValueError(f"data.val_fraction must be between 0 and 1, got {self.val_fraction}")
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"data.{name} must be a positive integer or null, got {value!r}")
        try:
            self.split = f"{int(self.split):02d}"
        except (TypeError, ValueError):
            raise ValueError(f'data.split must be a split number such as 1 or "01", got {self.split!r}') from None
        if not isinstance(self.cache_graphs, bool):
            raise ValueError(f"data.cache_graphs must be true or false, got {self.cache_graphs!r}")
        if isinstance(self.reference_energies, str) and self.reference_energies not in ("auto", "fit", "none"):
            raise ValueError(f"data.reference_energies must be auto, fit, none or a mapping, got {self.reference_energies!r}")
