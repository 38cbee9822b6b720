"""When a simulation stops being physical: the MD-stability criteria of Fu et al. (TMLR 2023).

* Molecules: bonds are found on the first frame from ASE's ``natural_cutoffs``; a run is unstable
  from the first frame where any bond length deviates from its reference (the mean over reference
  frames) by more than 0.5 Å.
* Periodic systems: the RDF over sliding windows of the run against the reference RDF; unstable
  from the first window whose RDF error (:func:`~freecg_plugin.md.observables.histogram_mae`)
  exceeds a threshold (water: 3.0, the largest of the O-O, O-H and H-H errors; LiPS: 1.0, all
  atoms).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .observables import _cells, _frames, histogram_mae, rdf

__all__ = ["BOND_TOLERANCE", "bond_lengths", "first_bond_failure", "first_rdf_failure", "molecular_bonds"]

BOND_TOLERANCE = 0.5
"""Å: a bond longer or shorter than its reference by more than this is broken."""


def molecular_bonds(numbers: Sequence[int], positions) -> np.ndarray:
    """Bonded pairs ``[B, 2]`` (i < j) of one structure, from ASE's covalent ``natural_cutoffs``.

    Raises:
        ValueError: if the structure has no bond (nothing to watch).
    """
    from ase import Atoms
    from ase.neighborlist import NeighborList, natural_cutoffs

    atoms = Atoms(numbers=list(numbers), positions=np.asarray(positions, dtype=np.float64))
    finder = NeighborList(natural_cutoffs(atoms), self_interaction=False, bothways=False, skin=0.0)
    finder.update(atoms)
    bonds = [(i, int(j)) for i in range(len(atoms)) for j in finder.get_neighbors(i)[0]]
    if not bonds:
        raise ValueError("no bonds found from ASE's natural cutoffs: nothing to check stability on")
    return np.array(sorted((min(b), max(b)) for b in bonds), dtype=np.int64)


def bond_lengths(positions, bonds: np.ndarray) -> np.ndarray:
    """Lengths ``[T, B]`` of ``bonds`` in every frame of ``positions [T, N, 3]``."""
    positions = _frames(positions)
    return np.linalg.norm(positions[:, bonds[:, 1]] - positions[:, bonds[:, 0]], axis=-1)


def first_bond_failure(positions, bonds: np.ndarray, reference: np.ndarray, tolerance: float = BOND_TOLERANCE) -> Optional[int]:
    """The first frame where a bond deviates from its ``reference`` length ``[B]`` by more than
    ``tolerance`` (Å), or ``None`` when the whole trajectory stays within it."""
    deviation = np.abs(bond_lengths(positions, bonds) - np.asarray(reference)[None])
    broken = np.flatnonzero((deviation > tolerance).any(axis=1))
    return int(broken[0]) if len(broken) else None


def first_rdf_failure(
    positions,
    cell,
    numbers: Sequence[int],
    reference: Sequence[np.ndarray],
    pairs: Sequence[Optional[Tuple[int, int]]],
    window: int,
    threshold: float,
    r_max: float = 6.0,
    bins: int = 500,
) -> Optional[int]:
    """The first frame of the first window (``window`` frames, sliding by ``window // 2``) whose
    largest RDF error over ``pairs`` exceeds ``threshold``, or ``None``.

    Args:
        reference: per pair, the reference g(r) on the same bins (from the reference frames).
        pairs: species pairs, e.g. ``[(8, 8), (8, 1), (1, 1)]`` for water, or ``[None]`` (all atoms).
    """
    positions = _frames(positions)
    cells = _cells(cell, positions.shape[0])
    if len(reference) != len(pairs):
        raise ValueError(f"{len(reference)} reference RDFs for {len(pairs)} pairs")
    step = max(window // 2, 1)
    for start in range(0, max(positions.shape[0] - window, 0) + 1, step):
        frames = slice(start, start + window)
        errors = [
            histogram_mae(rdf(positions[frames], cells[frames], numbers, pair, r_max, bins)[1], ref, r_max)
            for pair, ref in zip(pairs, reference)
        ]
        if max(errors) > threshold:
            return start
    return None
