"""Energy units (lengths are always Å). Forces are in energy unit per Å."""

from __future__ import annotations

__all__ = ["ENERGY_UNITS", "convert_energy"]

ENERGY_UNITS = {"eV": 1.0, "meV": 1e-3, "kcal/mol": 0.0433641043, "kJ/mol": 0.0103642688, "Hartree": 27.211386245988}
"""Value of one unit in eV (CODATA 2018; kcal/mol is the thermochemical calorie)."""


def convert_energy(value, from_unit: str, to_unit: str):
    """``value`` in ``from_unit`` expressed in ``to_unit`` (works on floats, arrays and tensors)."""
    for unit in (from_unit, to_unit):
        if unit not in ENERGY_UNITS:
            raise ValueError(f"unknown energy unit {unit!r}; known: {sorted(ENERGY_UNITS)}")
    return value * (ENERGY_UNITS[from_unit] / ENERGY_UNITS[to_unit])
