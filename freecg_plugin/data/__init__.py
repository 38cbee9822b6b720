"""Reference data: readers (npz, rMD17 both layouts, extxyz / ASE database), units, and the
registry of public datasets by name (shipped copy, then the download cache)."""

from .dataset import AtomsData
from .readers import load_ase, load_file, load_npz, load_rmd17_split
from .registry import DataFile, Dataset, cache_root, data_roots, dataset, datasets, fetch, locate
from .units import ENERGY_UNITS, convert_energy

__all__ = [
    "AtomsData",
    "DataFile",
    "Dataset",
    "ENERGY_UNITS",
    "cache_root",
    "convert_energy",
    "data_roots",
    "dataset",
    "datasets",
    "fetch",
    "load_ase",
    "load_file",
    "load_npz",
    "load_rmd17_split",
    "locate",
]
