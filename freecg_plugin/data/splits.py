"""The frames a :class:`DataConfig` names: train / validation / test sets, checked before any
training starts, and the per-element reference energies."""

from __future__ import annotations

import hashlib
from typing import Dict, Optional, Sequence, Tuple

import torch

from .config import DataConfig
from .dataset import AtomsData
from .readers import load_ase, load_file, load_npz, load_rmd17_split
from .registry import dataset, locate
from .units import ENERGY_UNITS, convert_energy

__all__ = ["atom_energies", "fingerprint", "load_data", "load_pool", "reference_offsets"]


def fingerprint(*sets: Tuple[Sequence, Sequence]) -> str:
    """A hash of ``(structures, labels)`` sets: every structure's positions and its label, in
    order. Equal hashes, same frames in the same places (runs that saw the same data)."""
    digest = hashlib.sha256()
    for structures, labels in sets:
        for structure, label in zip(structures, labels):
            digest.update(structure.positions.double().numpy().tobytes())
            digest.update(repr(label).encode())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def _load_dataset(d: DataConfig) -> Tuple[AtomsData, Optional[AtomsData]]:
    """``(pool, test)`` of a registry dataset (``test`` None: drawn from the pool)."""
    entry = dataset(d.dataset)
    if entry.format == "rmd17":
        root = locate(d.dataset, d.split)
        return load_rmd17_split(root / "rmd17", d.dataset.split("/", 1)[1], d.split)
    root = locate(d.dataset)
    unit = d.energy_unit or entry.energy_unit
    path = root / entry.files[0].path
    if entry.format == "npz":
        return load_npz(path, unit, d.keys), None
    if entry.format == "extxyz":
        return load_ase(path, unit, dict({"energy": entry.energy_key}, **(d.keys or {}))), None
    raise ValueError(f"dataset {d.dataset} ({entry.format}) holds no energies and forces to train a potential on")


def _load_file(path: str, d: DataConfig) -> AtomsData:
    if d.energy_unit is None:
        raise ValueError(f"{path}: data.energy_unit is required for your own files (one of {sorted(ENERGY_UNITS)})")
    return load_file(path, d.energy_unit, d.keys)


def load_pool(d: DataConfig) -> AtomsData:
    """Every frame of the training source ``d`` names (a dataset's pool of train + validation
    frames, or the ``train`` file), in the data's unit: the reference frames of a simulation."""
    return _load_dataset(d)[0] if d.dataset is not None else _load_file(d.train, d)


def load_data(d: DataConfig) -> Tuple[AtomsData, AtomsData, AtomsData]:
    """``(train, val, test)`` as ``d`` says, in the training unit.

    Validation frames come from ``d.val``, else are drawn (seeded) from the training pool
    (``n_val`` frames or ``val_fraction`` of it); test frames from ``d.test`` or the dataset's
    test file, else the pool's remaining frames.

    Raises:
        ValueError: when a set would be empty, more frames are asked than there are, or the
            validation/test frames hold elements the training frames lack; before any training.
    """
    if d.dataset is not None:
        pool, test_set = _load_dataset(d)
    else:
        pool, test_set = _load_file(d.train, d), (_load_file(d.test, d) if d.test else None)
    val_set = _load_file(d.val, d) if d.val else None
    n_val = 0 if val_set is not None else (d.n_val if d.n_val is not None else max(1, round(d.val_fraction * len(pool))))
    n_train = d.n_train if d.n_train is not None else len(pool) - n_val - (0 if test_set is not None or d.n_test is None else d.n_test)
    if n_train < 1 or n_train + n_val > len(pool):
        raise ValueError(f"{pool.source}: {n_train} train + {n_val} validation frames asked, {len(pool)} available")
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(d.seed)).tolist()
    train = pool.subset(order[:n_train])
    if val_set is None:
        val_set = pool.subset(order[n_train : n_train + n_val])
    if test_set is None:  # one file: the test frames are the rest
        test_set = pool.subset(order[n_train + n_val :])
    if d.n_test is not None:
        test_set = test_set.subset(range(min(d.n_test, len(test_set))))
    for name, frames in (("validation", val_set), ("test", test_set)):
        if len(frames) == 0:
            raise ValueError(f"{pool.source}: no {name} frames left ({len(pool)} frames, {n_train} train + {n_val} validation)")
        unknown = sorted(set(frames.elements) - set(train.elements))
        if unknown:
            raise ValueError(f"{frames.source}: {name} frames hold elements Z={unknown} that no training frame has")
    if d.train_unit:
        train, val_set, test_set = (x.to_unit(d.train_unit) for x in (train, val_set, test_set))
    return train, val_set, test_set


def atom_energies(d: DataConfig, train: AtomsData) -> Optional[Dict[int, float]]:
    """Per-element reference energies ``{Z: energy}`` in the training unit, or ``None``.

    ``fit`` (and ``auto`` when the training frames differ in composition) solves
    ``E_frame ~ sum_i e[Z_i]`` by least squares over the training frames.
    """
    choice = d.reference_energies
    if isinstance(choice, dict):
        from ase.data import atomic_numbers

        table = {}
        for key, value in choice.items():
            z = int(key) if str(key).isdigit() else atomic_numbers.get(str(key))
            if z is None:
                raise ValueError(f"data.reference_energies: {key!r} is not an element")
            table[z] = float(value)
        missing = sorted(set(train.elements) - set(table))
        if missing:
            raise ValueError(f"data.reference_energies has no energy for Z={missing}")
        unit = d.energy_unit or train.energy_unit
        if d.train_unit:
            table = {z: float(convert_energy(e, unit, d.train_unit)) for z, e in table.items()}
        return table
    counts = _composition(train, train.elements)
    if choice == "none" or (choice == "auto" and bool((counts == counts[0]).all())):
        return None
    solution = torch.linalg.lstsq(counts.double(), train.energy.double().unsqueeze(-1)).solution.squeeze(-1)
    return {z: float(e) for z, e in zip(train.elements, solution.tolist())}


def _composition(data: AtomsData, elements) -> torch.Tensor:
    """Atoms of each of ``elements`` per frame ``[F, len(elements)]``."""
    return torch.stack([torch.bincount(s.numbers, minlength=max(elements) + 1) for s in data.structures])[:, list(elements)]


def reference_offsets(data: AtomsData, energies: Dict[int, float]) -> torch.Tensor:
    """``sum_i e[Z_i]`` per frame ``[F]`` for reference energies ``{Z: e}``."""
    elements = sorted(energies)
    return _composition(data, elements).double() @ torch.tensor([energies[z] for z in elements], dtype=torch.float64)
