"""Readers for reference data: npz (rMD17, sGDML/MD17/MD22, periodic ``Z, R, cell, E, F``), the
official rMD17 archive layout, and anything ASE reads (extxyz, ASE database, trajectory). Energy
units are always explicit; errors name the file and the problem."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from ..atomistic import Structure
from .dataset import AtomsData
from .units import ENERGY_UNITS

__all__ = ["load_ase", "load_file", "load_npz", "load_rmd17_split"]

# key sets of the npz flavours: rMD17 (andersx/rmd17-npz and the official archive), sGDML/MD17/MD22,
# and the periodic sets
_FLAVOURS = {
    "rmd17": {"numbers": "nuclear_charges", "positions": "coords", "energy": "energies", "forces": "forces"},
    "sgdml": {"numbers": "z", "positions": "R", "energy": "E", "forces": "F"},
    "periodic": {"numbers": "Z", "positions": "R", "energy": "E", "forces": "F", "cell": "cell"},
}
_ASE_KEYS = {"energy": "energy", "forces": "forces", "stress": "stress"}


def _check_unit(path: Path, unit: Optional[str]) -> str:
    if unit is None:
        raise ValueError(f"{path}: energy unit required (one of {sorted(ENERGY_UNITS)}): the file does not record it")
    if unit not in ENERGY_UNITS:
        raise ValueError(f"{path}: unknown energy unit {unit!r}; known: {sorted(ENERGY_UNITS)}")
    return unit


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a data file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")


def _open_npz(path: Path) -> dict:
    _require_file(path)
    if not zipfile.is_zipfile(path):  # np.load would take it for a pickle
        raise ValueError(f"{path}: not an npz archive (numpy's .npz is a zip of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}
    except Exception as err:
        raise ValueError(f"{path}: not a readable npz file ({err})") from None


def _frames(path: Path, numbers, positions, energy, forces, cells, stress, unit: str) -> AtomsData:
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
    if cells is not None:
        cells = cells.reshape(-1, 3, 3)
        cells = np.broadcast_to(cells, (frames, 3, 3)) if len(cells) == 1 else cells
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
    return AtomsData(
        structures,
        torch.from_numpy(energy.copy()),
        [torch.from_numpy(f.copy()) for f in forces],
        unit,
        str(path),
        stress=None if stress is None else torch.from_numpy(stress.reshape(frames, 3, 3).copy()),
    )


def load_npz(path, energy_unit: Optional[str] = None, keys: Optional[Mapping[str, str]] = None) -> AtomsData:
    """Read an rMD17, sGDML/MD17/MD22 or periodic (``Z, R, cell, E, F``) npz file.

    Args:
        path: the file.
        energy_unit: the unit of its energies. Defaults: ``kcal/mol`` for rMD17 and sGDML files
            (their published convention), ``eV`` for the periodic layout; required for any other
            layout.
        keys: our names (``numbers, positions, energy, forces, cell, stress``) -> the file's keys,
            for a file in none of the known layouts (or to read e.g. ``old_energies``).
    """
    path = Path(path)
    arrays = _open_npz(path)
    flavour = next((name for name, names in _FLAVOURS.items() if set(names.values()) <= set(arrays)), None)
    names = dict(_FLAVOURS.get(flavour, {}), **(keys or {}))
    missing = sorted(k for k in ("numbers", "positions", "energy", "forces") if names.get(k) not in arrays)
    if missing:
        raise ValueError(
            f"{path}: keys {sorted(arrays)} match no known layout ({ {k: sorted(v.values()) for k, v in _FLAVOURS.items()} }); "
            f"give data.keys for {missing}"
        )
    default = None if keys else {"rmd17": "kcal/mol", "sgdml": "kcal/mol", "periodic": "eV"}.get(flavour)
    unit = _check_unit(path, energy_unit or default)
    return _frames(
        path,
        arrays[names["numbers"]].astype(np.int64),
        arrays[names["positions"]].astype(np.float64),
        arrays[names["energy"]].astype(np.float64).reshape(-1),
        arrays[names["forces"]].astype(np.float64),
        arrays[names["cell"]].astype(np.float64) if "cell" in names and names["cell"] in arrays else None,
        arrays[names["stress"]].astype(np.float64) if "stress" in names and names["stress"] in arrays else None,
        unit,
    )


def _rmd17_archive(folder: Path, molecule: str) -> Optional[Path]:
    """``npz_data/rmd17_<molecule>.npz`` of the official archive under ``folder``, if any."""
    found = sorted(folder.glob(f"**/npz_data/rmd17_{molecule}.npz"))
    return found[0] if found else None


def _rmd17_indices(path: Path) -> np.ndarray:
    try:
        return np.loadtxt(path, dtype=np.int64).reshape(-1)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not an rMD17 index file ({err})") from None


def load_rmd17_split(folder, molecule: str, split="01") -> Tuple[AtomsData, AtomsData]:
    """The official rMD17 split: ``(train, test)`` (kcal/mol), from the per-split files
    ``rmd17_<molecule>_{train,test}_<split>.npz`` in ``folder``, or from the official archive
    under it (``npz_data/rmd17_<molecule>.npz`` + ``splits/index_{train,test}_<split>.csv``).
    ``split`` is ``"01"`` to ``"05"`` or an integer. Never train on more than the 1,000 train
    frames (they are time-correlated)."""
    folder, split = Path(folder), f"{int(split):02d}"
    per_split = [folder / f"rmd17_{molecule}_{part}_{split}.npz" for part in ("train", "test")]
    if all(p.is_file() for p in per_split):
        train, test = (load_npz(p, "kcal/mol") for p in per_split)
    else:
        archive = _rmd17_archive(folder, molecule)
        if archive is None:
            raise FileNotFoundError(
                f"{per_split[0]}: no such file (nor an rMD17 archive with npz_data/rmd17_{molecule}.npz under {folder})"
            )
        frames = load_npz(archive, "kcal/mol")
        splits = archive.parent.parent / "splits"
        train, test = (frames.subset(_rmd17_indices(splits / f"index_{part}_{split}.csv").tolist()) for part in ("train", "test"))
    if not torch.equal(train.structures[0].numbers, test.structures[0].numbers):
        raise ValueError(f"{folder}: train and test files of {molecule} split {split} hold different molecules")
    return train, test


def _ase_value(atoms, key: str, per_atom: bool):
    """``key`` from the frame's calculator results, then its arrays (per atom) or info."""
    results = atoms.calc.results if atoms.calc is not None else {}
    if key in results:
        return results[key]
    return (atoms.arrays if per_atom else atoms.info).get(key)


def load_ase(path, energy_unit: Optional[str], keys: Optional[Mapping[str, str]] = None, format: Optional[str] = None) -> AtomsData:
    """Read every frame of a file ASE reads: extxyz, an ASE database (``.db``), a trajectory.

    Args:
        path: the file.
        energy_unit: the unit of its energies (required: these files do not record it); forces
            are in ``energy_unit``/Å and stress in ``energy_unit``/Å^3 (ASE's sign convention).
        keys: ``{energy, forces, stress}`` -> the file's keys (defaults: the same names).
        format: ASE format name (default: from the suffix; ``.xyz`` is read as extxyz).

    A frame with ``pbc="F F F"`` is a molecule whatever lattice it carries; one periodic along
    some cell vectors only (a slab) keeps its per-axis ``pbc``. Stress is read when every frame
    has it.
    """
    from ase.io import read
    from ase.stress import voigt_6_to_full_3x3_stress

    path = Path(path)
    _require_file(path)
    unit = _check_unit(path, energy_unit)
    names: Dict[str, str] = dict(_ASE_KEYS, **(keys or {}))
    unknown = sorted(set(names) - set(_ASE_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown data.keys {unknown}; known: {sorted(_ASE_KEYS)}")
    if format is None and path.suffix in (".xyz", ".extxyz"):
        format = "extxyz"
    try:
        frames = read(path, index=":", format=format)
    except Exception as err:
        raise ValueError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not frames:
        raise ValueError(f"{path}: no frames")
    structures, energy, forces, stress = [], [], [], []
    for i, atoms in enumerate(frames):
        e, f = _ase_value(atoms, names["energy"], False), _ase_value(atoms, names["forces"], True)
        if e is None or f is None:
            has = sorted(set(atoms.info) | set(atoms.arrays) | set(atoms.calc.results if atoms.calc else {}))
            raise ValueError(f"{path}: frame {i} lacks '{names['energy']}' or '{names['forces']}' (has {has}); set data.keys")
        pbc = tuple(bool(p) for p in atoms.pbc)
        cell = torch.tensor(np.asarray(atoms.cell), dtype=torch.float64) if any(pbc) else None
        structures.append(
            Structure(
                torch.tensor(atoms.numbers, dtype=torch.long),
                torch.tensor(atoms.positions, dtype=torch.float64),
                cell,
                pbc,
            )
        )
        energy.append(float(np.asarray(e).reshape(-1)[0]))
        forces.append(torch.tensor(np.asarray(f, dtype=np.float64)))
        s = _ase_value(atoms, names["stress"], False)
        stress.append(None if s is None else np.asarray(s, dtype=np.float64).reshape(-1))
    if not all(np.isfinite(e) for e in energy) or not all(torch.isfinite(f).all() for f in forces):
        raise ValueError(f"{path}: non-finite energies or forces")
    full = None
    if all(s is not None for s in stress):
        full = torch.tensor(np.stack([voigt_6_to_full_3x3_stress(s) if s.size == 6 else s.reshape(3, 3) for s in stress]))
    return AtomsData(structures, torch.tensor(energy, dtype=torch.float64), forces, unit, str(path), stress=full)


def load_file(path, energy_unit: Optional[str], keys: Optional[Mapping[str, str]] = None) -> AtomsData:
    """An npz file (:func:`load_npz`) or anything ASE reads (:func:`load_ase`), by suffix."""
    path = Path(path)
    if path.suffix == ".npz":
        return load_npz(path, energy_unit, keys)
    return load_ase(path, energy_unit, keys)
