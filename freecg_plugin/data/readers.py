"""Readers for the reference data formats. Errors name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from ..atomistic import Structure
from .dataset import AtomsData
from .units import ENERGY_UNITS

__all__ = ["load_extxyz", "load_npz", "load_rmd17_split"]

# key sets of the npz flavours: rMD17 (andersx/rmd17-npz), sGDML/MD17/MD22, and our periodic sets
_FLAVOURS = {
    "rmd17": {"numbers": "nuclear_charges", "positions": "coords", "energy": "energies", "forces": "forces"},
    "sgdml": {"numbers": "z", "positions": "R", "energy": "E", "forces": "F"},
    "periodic": {"numbers": "Z", "positions": "R", "energy": "E", "forces": "F", "cell": "cell"},
}


def _open_npz(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}
    except Exception as err:
        raise ValueError(f"{path}: not a readable npz file ({err})") from None


def load_npz(path, energy_unit: str | None = None) -> AtomsData:
    """Read an rMD17, sGDML/MD17/MD22 or periodic (``Z, R, cell, E, F``) npz file.

    Args:
        path: the file.
        energy_unit: the unit of its energies. Defaults: ``kcal/mol`` for rMD17 and sGDML files,
            ``eV`` for periodic ones; pass it explicitly for any other data.
    """
    path = Path(path)
    arrays = _open_npz(path)
    flavour = next((name for name, keys in _FLAVOURS.items() if set(keys.values()) <= set(arrays)), None)
    if flavour is None:
        raise ValueError(f"{path}: keys {sorted(arrays)} match no known layout ({ {k: sorted(v.values()) for k, v in _FLAVOURS.items()} })")
    keys = _FLAVOURS[flavour]
    unit = energy_unit or ("eV" if flavour == "periodic" else "kcal/mol")
    if unit not in ENERGY_UNITS:
        raise ValueError(f"{path}: unknown energy unit {unit!r}")
    numbers = arrays[keys["numbers"]].astype(np.int64)
    positions = arrays[keys["positions"]].astype(np.float64)
    energy = arrays[keys["energy"]].astype(np.float64).reshape(-1)
    forces = arrays[keys["forces"]].astype(np.float64)
    frames = len(energy)
    if numbers.ndim == 1:
        numbers = np.broadcast_to(numbers, (frames, len(numbers)))
    if positions.shape != (frames, numbers.shape[1], 3) or forces.shape != positions.shape or numbers.shape[0] != frames:
        raise ValueError(
            f"{path}: shapes do not match: numbers {numbers.shape}, positions {positions.shape}, "
            f"energies {energy.shape}, forces {forces.shape}"
        )
    for name, array in (("positions", positions), ("energies", energy), ("forces", forces)):
        if not np.isfinite(array).all():
            raise ValueError(f"{path}: non-finite values in {name}")
    cells = None
    if "cell" in keys:
        cells = arrays[keys["cell"]].astype(np.float64).reshape(-1, 3, 3)
        if len(cells) == 1:
            cells = np.broadcast_to(cells, (frames, 3, 3))
        if len(cells) != frames:
            raise ValueError(f"{path}: {len(cells)} cells for {frames} frames")
    structures = [
        Structure(
            torch.from_numpy(numbers[f].copy()),
            torch.from_numpy(positions[f].copy()),
            None if cells is None else torch.from_numpy(cells[f].copy()),
            cells is not None,
        )
        for f in range(frames)
    ]
    return AtomsData(structures, torch.from_numpy(energy.copy()), [torch.from_numpy(f.copy()) for f in forces], unit, str(path))


def load_rmd17_split(data_dir, molecule: str, split: str = "01") -> Tuple[AtomsData, AtomsData]:
    """The official rMD17 split: ``(train, test)`` from ``rmd17_<molecule>_{train,test}_<split>.npz``
    (kcal/mol). Never train on more than the 1,000 train frames (they are time-correlated)."""
    data_dir = Path(data_dir)
    train = load_npz(data_dir / f"rmd17_{molecule}_train_{split}.npz", "kcal/mol")
    test = load_npz(data_dir / f"rmd17_{molecule}_test_{split}.npz", "kcal/mol")
    if not torch.equal(train.structures[0].numbers, test.structures[0].numbers):
        raise ValueError(f"{data_dir}: train and test files of {molecule} split {split} hold different molecules")
    return train, test


def load_extxyz(path, energy_unit: str, energy_key: str = "energy", forces_key: str = "forces") -> AtomsData:
    """Read an extended-XYZ file via ASE (water, LiPS, MD22 subsets). ``energy_unit`` is required:
    extxyz files do not record it."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if energy_unit not in ENERGY_UNITS:
        raise ValueError(f"{path}: unknown energy unit {energy_unit!r}")
    try:
        frames = read(path, index=":", format="extxyz")
    except Exception as err:
        raise ValueError(f"{path}: cannot read as extxyz ({err})") from None
    structures, energy, forces = [], [], []
    for i, atoms in enumerate(frames):
        info = {**atoms.info, **(atoms.calc.results if atoms.calc is not None else {})}
        arrays = {**atoms.arrays, **(atoms.calc.results if atoms.calc is not None else {})}
        if energy_key not in info or forces_key not in arrays:
            raise ValueError(f"{path}: frame {i} lacks '{energy_key}' or '{forces_key}' (has {sorted(info)} / {sorted(arrays)})")
        periodic = bool(atoms.pbc.any())
        structures.append(
            Structure(
                torch.tensor(atoms.numbers, dtype=torch.long),
                torch.tensor(atoms.positions, dtype=torch.float64),
                torch.tensor(np.asarray(atoms.cell), dtype=torch.float64) if periodic else None,
                periodic,
            )
        )
        energy.append(float(np.asarray(info[energy_key]).reshape(-1)[0]))
        forces.append(torch.tensor(np.asarray(arrays[forces_key]), dtype=torch.float64))
    if not structures:
        raise ValueError(f"{path}: no frames")
    return AtomsData(structures, torch.tensor(energy, dtype=torch.float64), forces, energy_unit, str(path))
