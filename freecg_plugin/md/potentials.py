"""What ``freecg md`` simulates: a ``freecg train`` checkpoint, or a model of the nequip framework
compiled by ``nequip-compile --mode aotinductor --target ase`` (``.nequip.pt2``; nequip refuses
TorchScript on torch >= 2.10), such as NequIP + FreeCG or Allegro + FreeCG trained with
``nequip-train``.

A nequip model carries its cutoff and element names but neither its training data nor its energy
unit: its runs need a starting structure and the unit (``energy_unit``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

__all__ = ["NEQUIP_SUFFIXES", "Potential", "is_nequip_model", "load_potential"]

NEQUIP_SUFFIXES = (".nequip.pt2",)
"""File endings of compiled nequip-framework models."""


@dataclass
class Potential:
    """A model ready for ASE.

    Attributes:
        calculator: the ASE calculator (energies in eV, forces in eV/Å).
        elements: atomic numbers the model knows.
        cutoff: Å.
        training_data: the ``DataConfig`` of a ``freecg train`` checkpoint; ``None`` for nequip models.
        kind: ``freecg`` or ``nequip``.
    """

    calculator: Any
    elements: List[int]
    cutoff: float
    training_data: Optional[Any]
    kind: str


def is_nequip_model(path) -> bool:
    """Whether ``path`` names a compiled nequip-framework model (by its ending)."""
    return str(path).endswith(NEQUIP_SUFFIXES)


def _nequip_potential(path: Path, device: str, energy_unit: Optional[str]) -> Potential:
    from ase.data import atomic_numbers
    from nequip.integrations.ase import NequIPCalculator

    from ..data.units import convert_energy

    if energy_unit is None:
        raise ValueError(f"md: {path.name} is a nequip model, which does not store its energy unit: give --energy-unit (eV, kcal/mol, ...)")
    scale = convert_energy(1.0, energy_unit, "eV")
    calculator = NequIPCalculator.from_compiled_model(
        str(path), device=device, chemical_species_to_atom_type_map=True, energy_units_to_eV=scale
    )
    names = list(calculator.transforms[0].model_type_names)  # the species mapper comes first
    cutoff = next(float(t.r_max) for t in calculator.transforms if hasattr(t, "r_max"))  # the neighbour list's
    unknown = [n for n in names if n not in atomic_numbers]
    if unknown:
        raise ValueError(f"md: {path.name}: its type names {unknown} are not chemical symbols")
    return Potential(calculator, sorted(atomic_numbers[n] for n in names), cutoff, None, "nequip")


def load_potential(checkpoint, device: str = "cpu", dtype: str = "float64", energy_unit: Optional[str] = None) -> Potential:
    """The potential in ``checkpoint`` (see the module docstring); ``dtype`` applies to ``freecg
    train`` checkpoints (a compiled model keeps the precision it was compiled in).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a nequip model without ``energy_unit``, or with type names that are not
            elements; ``energy_unit`` given for a ``freecg train`` checkpoint (it stores its own).
    """
    import torch

    from ..calculator import FreeCGCalculator

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if is_nequip_model(path):
        return _nequip_potential(path, device, energy_unit)
    if energy_unit is not None:
        raise ValueError(f"md: --energy-unit is for nequip models; {path.name} stores the unit of its training data")
    calculator = FreeCGCalculator(str(path), device=device, dtype=getattr(torch, dtype))
    return Potential(calculator, list(calculator.elements), calculator.cutoff, calculator.config.data, "freecg")
