"""QM9 (Ramakrishnan et al., Sci. Data 2014): the twelve targets, their units and readouts, the
isolated-atom reference energies, the project's npz format, and its conversion from the PyPI
package ``qm9pack``.

The npz format (the shipped 10k subset, and what ``freecg data prepare qm9`` writes): molecules
concatenated, ``Z [A]``, ``R [A, 3]`` (Å), ``ptr [M + 1]`` offsets, ``natoms [M]``, ``index [M]``
(QM9's molecule number), ``props [M, P]`` with names ``prop_names [P]`` in QM9's units (Hartree,
debye, bohr^3, bohr^2, cal/mol/K).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..atomistic import Structure

__all__ = ["ATOM_REFERENCES", "ELEMENTS", "PropertyData", "QM9_TARGETS", "Target", "load_qm9", "prepare_qm9"]

HARTREE_IN_MEV = 27211.386245988
ELEMENTS = (1, 6, 7, 8, 9)
"""H, C, N, O, F: the only elements in QM9."""


@dataclass(frozen=True)
class Target:
    """One QM9 property: its column in the npz, factor to the reported unit, readout kind
    (``sum``, ``mean``, ``dipole``, ``spatial_extent``) and whether isolated-atom energies are
    subtracted (the model learns the atomisation part)."""

    column: str
    unit: str
    factor: float
    readout: str
    atom_reference: bool = False


QM9_TARGETS: Dict[str, Target] = {
    "mu": Target("Dipole_debye", "D", 1.0, "dipole"),
    "alpha": Target("Polarizability_bohr3", "bohr^3", 1.0, "sum"),
    "homo": Target("HOMO_au", "meV", HARTREE_IN_MEV, "mean"),
    "lumo": Target("LUMO_au", "meV", HARTREE_IN_MEV, "mean"),
    "gap": Target("HOMO_LUMO_gap_au", "meV", HARTREE_IN_MEV, "mean"),
    "r2": Target("R2_bohr2", "bohr^2", 1.0, "spatial_extent"),
    "zpve": Target("ZPVE_au", "meV", HARTREE_IN_MEV, "sum"),
    "U0": Target("InternalEnergy_0K_au", "meV", HARTREE_IN_MEV, "sum", True),
    "U": Target("InternalEnergy_298K_au", "meV", HARTREE_IN_MEV, "sum", True),
    "H": Target("Enthalphy_298K_au", "meV", HARTREE_IN_MEV, "sum", True),  # qm9pack's spelling
    "G": Target("GibbsFreeEnergy_298K_au", "meV", HARTREE_IN_MEV, "sum", True),
    "Cv": Target("Heatcapacity_Cv_cal_mol_K", "cal/mol/K", 1.0, "sum"),
}
"""The twelve targets of the QM9 benchmark, by their usual names, in the units results are
reported in (meV for energies, D, bohr^3, bohr^2, cal/mol/K)."""

ATOM_REFERENCES: Dict[str, Dict[int, float]] = {
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063162, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
}
"""Hartree: energies of the isolated atoms at QM9's level of theory (B3LYP/6-31G(2df,p)), from
the dataset's ``atomref`` table (figshare 1057643)."""


@dataclass
class PropertyData:
    """Molecules with property targets.

    Attributes:
        structures: the molecules (positions in Å).
        targets: ``{name: [M]}`` float64 in the target's reported unit; for the energies with
            isolated-atom references, the atomisation part (the reference sum subtracted).
        source: where they came from (for messages).
        index: QM9 molecule numbers ``[M]``.
    """

    structures: List[Structure]
    targets: Dict[str, Tensor]
    source: str
    index: Tensor

    def __len__(self) -> int:
        return len(self.structures)

    def subset(self, indices: Sequence[int]) -> PropertyData:
        chosen = torch.as_tensor(list(indices), dtype=torch.long)
        return PropertyData(
            [self.structures[i] for i in chosen.tolist()], {k: v[chosen] for k, v in self.targets.items()}, self.source, self.index[chosen]
        )


def check_targets(names: Sequence[str]) -> None:
    """Raise ``ValueError`` for an empty list or a name that is not a QM9 target."""
    if not names:
        raise ValueError(f"no targets given; QM9 targets: {list(QM9_TARGETS)}")
    unknown = [n for n in names if n not in QM9_TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {unknown}; QM9 targets: {list(QM9_TARGETS)}")


def reference_sum(name: str, numbers: Tensor) -> float:
    """Sum of the isolated-atom energies of ``numbers`` for target ``name``, in meV (0 for
    targets without references)."""
    table = ATOM_REFERENCES.get(name)
    if table is None:
        return 0.0
    return sum(table[int(z)] for z in numbers.tolist()) * HARTREE_IN_MEV


def load_qm9(path, targets: Sequence[str], limit: Optional[int] = None) -> PropertyData:
    """Molecules and ``targets`` from a QM9 npz (the first ``limit`` molecules when given).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown target, a target the file lacks, or an element outside H, C, N,
            O, F (naming the molecule).
    """
    check_targets(targets)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with np.load(path, allow_pickle=False) as data:
        missing = sorted({"Z", "R", "ptr", "props", "prop_names"} - set(data.files))
        if missing:
            raise ValueError(f"{path}: not a QM9 npz (missing {missing})")
        names = [str(n) for n in data["prop_names"]]
        lacking = [t for t in targets if QM9_TARGETS[t].column not in names]
        if lacking:
            raise ValueError(f"{path}: has no column for target(s) {lacking} (columns: {names})")
        ptr, numbers, positions, props = data["ptr"], data["Z"], data["R"], data["props"]
        index = data["index"] if "index" in data.files else np.arange(len(ptr) - 1)
    count = len(ptr) - 1 if limit is None else min(limit, len(ptr) - 1)
    outside = np.setdiff1d(np.unique(numbers[: ptr[count]]), ELEMENTS)
    if len(outside):
        first = int(np.searchsorted(ptr, np.flatnonzero(np.isin(numbers, outside))[0], side="right") - 1)
        raise ValueError(f"{path}: molecule {first} holds Z={outside.tolist()}, outside QM9's H, C, N, O, F")
    structures = [
        Structure(torch.as_tensor(numbers[a:b], dtype=torch.long), torch.as_tensor(positions[a:b], dtype=torch.float64))
        for a, b in zip(ptr[:count], ptr[1 : count + 1])
    ]
    values = {}
    for name in targets:
        target = QM9_TARGETS[name]
        column = torch.as_tensor(props[:count, names.index(target.column)], dtype=torch.float64) * target.factor
        if target.atom_reference:
            column = column - torch.tensor([reference_sum(name, s.numbers) for s in structures], dtype=torch.float64)
        values[name] = column
    return PropertyData(structures, values, str(path), torch.as_tensor(index[:count]))


_COLUMNS = [t.column for t in QM9_TARGETS.values()]


def _qm9pack_folder() -> Path:
    """qm9pack's data folder, found without importing the package (its ``__init__`` needs
    pandas and setuptools' ``pkg_resources``)."""
    from importlib.util import find_spec

    spec = find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the full QM9 comes from the PyPI package qm9pack: pip install qm9pack")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def prepare_qm9(destination, source: Optional[Path] = None, progress: bool = True) -> Path:
    """Convert QM9 from ``qm9pack``'s CSV files (``source``: their folder; default the installed
    package's) into the npz format above, at ``destination`` (written to a temporary name, then
    renamed). qm9pack holds the 130,831 molecules left after QM9's 3,054 failed consistency
    checks, so no further exclusion is needed.

    Returns:
        ``destination``.
    """
    source = Path(source) if source is not None else _qm9pack_folder()
    parts = sorted(source.glob("qm9_part*.csv"))
    if not parts:
        raise ValueError(f"{source}: no qm9_part*.csv files (is this qm9pack's data folder?)")
    csv.field_size_limit(1 << 24)
    symbols = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
    index, natoms, numbers, positions, props = [], [], [], [], []
    for part in parts:
        with open(part, newline="") as handle:
            for row in csv.DictReader(handle):
                elements = [symbols[s.strip().strip("'")] for s in row["Elements"].strip("[]").split(",")]
                values = row["XYZ_Ang"].replace("[", "").replace("]", "").split(",")
                xyz = np.array([float(v.replace("*^", "e")) for v in values if v.strip()]).reshape(len(elements), 3)
                index.append(int(row["Index"]))
                natoms.append(len(elements))
                numbers.extend(elements)
                positions.append(xyz)
                props.append([float(row[c]) for c in _COLUMNS])
        if progress:
            print(f"prepare qm9: {part.name}: {len(index)} molecules so far", flush=True)
    ptr = np.concatenate([[0], np.cumsum(natoms)])
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".part.npz")
    np.savez(
        tmp, index=np.asarray(index, np.int32), natoms=np.asarray(natoms, np.int16), ptr=ptr.astype(np.int64),
        Z=np.asarray(numbers, np.int8), R=np.concatenate(positions), props=np.asarray(props), prop_names=np.asarray(_COLUMNS),
    )  # fmt: skip
    os.replace(tmp, destination)
    return destination
