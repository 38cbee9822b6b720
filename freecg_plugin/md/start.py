"""How a ``freecg md`` run starts: the starting structure (a file, a dataset name, or the
checkpoint's training data), the reference frames, the checks no simulation should start
without, and the initial velocities."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from ..atomistic import Structure, check_elements, frame_graph
from ..configs.md import MDConfig
from ..data.config import DataConfig
from ..data.registry import datasets
from ..data.splits import load_pool
from ..neighbors import check_structure

__all__ = ["OVERLAP_DISTANCE", "check_start", "closest_pair", "initial_velocities", "load_structure", "read_frames", "reference_frames"]

OVERLAP_DISTANCE = 0.5
"""Å: two atoms closer than this overlap (a bad start, or a collapsed simulation)."""


def _dataset_frames(name: str, split: Any = "01"):
    """``AtomsData`` of a registry dataset's train pool."""
    return load_pool(DataConfig(dataset=name, split=split, n_val=1))


def _to_atoms(structure):
    from ase import Atoms

    cell = None if structure.cell is None else structure.cell.detach().double().numpy()
    return Atoms(numbers=structure.numbers.tolist(), positions=structure.positions.detach().double().numpy(), cell=cell, pbc=structure.axes)


def read_frames(source: Optional[str], training_data) -> List:
    """Frames of ``source`` (a file ASE reads or a dataset name) or, for ``None``, of the
    checkpoint's training data, as ``ase.Atoms``."""
    if source is None:
        return [_to_atoms(s) for s in load_pool(training_data).structures]
    if not Path(source).exists() and source in {d.name for d in datasets()}:
        return [_to_atoms(s) for s in _dataset_frames(source).structures]
    import ase.io

    try:
        frames = ase.io.read(source, ":")
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: no such file or dataset (see `freecg data list`)") from None
    except Exception as err:
        raise ValueError(f"{source}: ASE cannot read it ({str(err).splitlines()[0][:160] if str(err) else type(err).__name__})") from None
    return frames if isinstance(frames, list) else [frames]


def load_structure(source: Optional[str], frame: int, training_data):
    """The starting structure: frame ``frame`` of ``source`` (see :func:`read_frames`), as ``ase.Atoms``
    without calculator or constraints."""
    frames = read_frames(source, training_data)
    if not -len(frames) <= frame < len(frames):
        raise ValueError(f"{source or 'training data'}: frame {frame} asked, {len(frames)} frames")
    atoms = frames[frame].copy()
    atoms.calc = None
    atoms.set_constraint()
    return atoms


def closest_pair(atoms, within: float = OVERLAP_DISTANCE) -> Optional[Tuple[int, int, float]]:
    """The closest pair ``(i, j, distance)`` nearer than ``within`` Å (periodic images included),
    or ``None``."""
    from vesin import NeighborList

    box = np.asarray(atoms.cell) if atoms.pbc.any() else np.zeros((3, 3))
    i, j, d = NeighborList(cutoff=within, full_list=False).compute(atoms.positions, box, atoms.pbc, quantities="ijd")
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def check_start(atoms, elements, cutoff: float) -> None:
    """Reject a start no simulation should take, with one line naming the problem.

    Raises:
        ValueError: unknown elements, a periodic cell of zero volume, overlapping atoms, an atom
            with no neighbour within the model's cutoff.
    """
    check_elements(torch.as_tensor(atoms.numbers), elements)
    cell = torch.tensor(np.asarray(atoms.cell), dtype=torch.float64) if atoms.pbc.any() else None
    structure = Structure(torch.as_tensor(atoms.numbers), torch.tensor(atoms.positions, dtype=torch.float64), cell, tuple(atoms.pbc))
    check_structure(structure.positions, structure.numbers, structure.cell, structure.pbc)
    overlap = closest_pair(atoms)
    if overlap is not None:
        raise ValueError(f"atoms {overlap[0]} and {overlap[1]} overlap ({overlap[2]:.3f} Å apart)")
    frame_graph(structure, cutoff)  # raises for an atom without neighbours


def initial_velocities(atoms, config: MDConfig) -> None:
    """Maxwell-Boltzmann momenta at ``config.temperature`` (seeded), without net momentum, and
    without net rotation for molecules."""
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(config.seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, config.temperature, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=config.temperature, rng=rng)
    vd.Stationary(atoms)
    if not atoms.pbc.any():
        vd.ZeroRotation(atoms)


def reference_frames(training_data) -> List:
    """The checkpoint's training frames, or none when there are none or they cannot be read here."""
    if training_data is None:
        return []
    try:
        return read_frames(None, training_data)
    except (OSError, ValueError):
        return []
