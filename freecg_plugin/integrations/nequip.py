"""Models of the nequip framework compiled by ``nequip-compile --mode aotinductor --target ase``
(``.nequip.pt2``; nequip refuses TorchScript on torch >= 2.10), such as NequIP + FreeCG or
Allegro + FreeCG trained with ``nequip-train``, as an ASE calculator.

A nequip model carries its cutoff and element names but neither its training data nor its energy
unit: the unit must be given."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

__all__ = ["NEQUIP_SUFFIXES", "is_nequip_model", "load_compiled_nequip"]

NEQUIP_SUFFIXES = (".nequip.pt2",)
"""File endings of compiled nequip-framework models."""


def is_nequip_model(path) -> bool:
    """Whether ``path`` names a compiled nequip-framework model (by its ending)."""
    return str(path).endswith(NEQUIP_SUFFIXES)


def load_compiled_nequip(path, device: str, energy_unit: Optional[str]) -> Tuple[Any, List[int], float]:
    """``(calculator, elements, cutoff)`` of a compiled nequip model: an ASE calculator in eV and
    eV/Å, the atomic numbers it knows, its cutoff in Å.

    Raises:
        ValueError: without ``energy_unit``, or with type names that are not chemical symbols.
    """
    from ase.data import atomic_numbers
    from nequip.integrations.ase import NequIPCalculator

    from ..data.units import convert_energy

    path = Path(path)
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
    return calculator, sorted(atomic_numbers[n] for n in names), cutoff
