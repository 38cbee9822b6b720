"""What ``freecg md`` simulates: a ``freecg train`` checkpoint (:class:`~freecg_plugin.integrations.ase.FreeCGCalculator`)
or a compiled nequip-framework model (:mod:`freecg_plugin.integrations.nequip`), which carries
neither its training data nor its energy unit: its runs need a starting structure and the unit
(``energy_unit``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from ..integrations.nequip import is_nequip_model, load_compiled_nequip

__all__ = ["Potential", "load_potential"]


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


def load_potential(checkpoint, device: str = "cpu", dtype: str = "float64", energy_unit: Optional[str] = None) -> Potential:
    """The potential in ``checkpoint`` (see the module docstring); ``dtype`` applies to ``freecg
    train`` checkpoints (a compiled model keeps the precision it was compiled in).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a nequip model without ``energy_unit``, or with type names that are not
            elements; ``energy_unit`` given for a ``freecg train`` checkpoint (it stores its own).
    """
    import torch

    from ..integrations.ase import FreeCGCalculator

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if is_nequip_model(path):
        return Potential(*load_compiled_nequip(path, device, energy_unit), None, "nequip")
    if energy_unit is not None:
        raise ValueError(f"md: --energy-unit is for nequip models; {path.name} stores the unit of its training data")
    calculator = FreeCGCalculator(str(path), device=device, dtype=getattr(torch, dtype))
    return Potential(calculator, list(calculator.elements), calculator.cutoff, calculator.config.data, "freecg")
