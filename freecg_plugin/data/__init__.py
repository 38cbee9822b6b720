"""Reference data: readers for rMD17 / sGDML npz and extxyz, with explicit units."""

from .dataset import AtomsData
from .readers import load_extxyz, load_npz, load_rmd17_split
from .units import ENERGY_UNITS, convert_energy

__all__ = ["AtomsData", "ENERGY_UNITS", "convert_energy", "load_extxyz", "load_npz", "load_rmd17_split"]
