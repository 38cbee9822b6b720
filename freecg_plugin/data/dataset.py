"""Labelled structures (energies and forces) with their units."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from ..atomistic import Structure
from .units import convert_energy

__all__ = ["AtomsData"]


@dataclass
class AtomsData:
    """Frames with energies ``[F]``, per-frame forces ``[n_f, 3]`` and optional stress ``[F, 3, 3]``.

    Attributes:
        structures: the frames (positions in Å).
        energy: ``[F]`` in ``energy_unit``.
        forces: per-frame ``[n_f, 3]`` in ``energy_unit``/Å.
        energy_unit: e.g. ``"kcal/mol"`` or ``"eV"``.
        source: where the frames came from (for messages).
        elements: atomic numbers the frames hold (computed when not given).
        stress: ``[F, 3, 3]`` in ``energy_unit``/Å^3 (ASE's sign convention), or ``None``.
    """

    structures: List[Structure]
    energy: Tensor
    forces: List[Tensor]
    energy_unit: str
    source: str = ""
    elements: Optional[List[int]] = field(default=None)
    stress: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if len(self.structures) != len(self.energy) or len(self.forces) != len(self.energy):
            raise ValueError(
                f"{self.source}: {len(self.structures)} structures, {len(self.energy)} energies, {len(self.forces)} force sets"
            )
        for i, (s, f) in enumerate(zip(self.structures, self.forces)):
            if f.shape != s.positions.shape:
                raise ValueError(f"{self.source}: frame {i} has forces {list(f.shape)} for positions {list(s.positions.shape)}")
        if self.stress is not None and self.stress.shape != (len(self.energy), 3, 3):
            raise ValueError(f"{self.source}: stress {list(self.stress.shape)} for {len(self.energy)} frames")
        if self.elements is None:
            self.elements = sorted({int(z) for s in self.structures for z in s.numbers.tolist()})

    def __len__(self) -> int:
        return len(self.structures)

    def subset(self, indices: Sequence[int]) -> AtomsData:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise ValueError(f"{self.source}: indices out of range for {len(self)} frames")
        return replace(
            self,
            structures=[self.structures[i] for i in index.tolist()],
            energy=self.energy[index],
            forces=[self.forces[i] for i in index.tolist()],
            stress=None if self.stress is None else self.stress[index],
        )

    @property
    def atom_counts(self) -> Tensor:
        """Atoms per frame ``[F]``."""
        return torch.tensor([len(s.numbers) for s in self.structures])

    def to_unit(self, energy_unit: str) -> AtomsData:
        """The same frames with energies and forces converted to ``energy_unit``."""
        return replace(
            self,
            energy=convert_energy(self.energy, self.energy_unit, energy_unit),
            forces=[convert_energy(f, self.energy_unit, energy_unit) for f in self.forces],
            stress=None if self.stress is None else convert_energy(self.stress, self.energy_unit, energy_unit),
            energy_unit=energy_unit,
        )
