"""Molecular dynamics with FreeCG models: ``freecg md`` runs (ASE integrators, resumable, stopped
when unstable), observables of trajectories, the MD-stability criteria, and their analysis.
Comparisons of models in MD (``freecg md-compare``) live in :mod:`freecg_plugin.compare.md`."""

from ..configs.md import ENSEMBLES, MDConfig
from .analysis import analyse, read_log
from .observables import (
    Diffusivity,
    EnergyDrift,
    diffusivity,
    distance_histogram,
    energy_drift,
    histogram_mae,
    mean_squared_displacement,
    rdf,
    unwrap,
)
from .potentials import Potential, load_potential
from .simulation import MDRun, simulate, stored_config
from .stability import BOND_TOLERANCE, bond_lengths, first_bond_failure, first_rdf_failure, molecular_bonds
from .start import check_start, initial_velocities, load_structure

__all__ = [
    "BOND_TOLERANCE",
    "ENSEMBLES",
    "Diffusivity",
    "EnergyDrift",
    "MDConfig",
    "MDRun",
    "Potential",
    "analyse",
    "bond_lengths",
    "check_start",
    "diffusivity",
    "distance_histogram",
    "energy_drift",
    "first_bond_failure",
    "first_rdf_failure",
    "histogram_mae",
    "initial_velocities",
    "load_potential",
    "load_structure",
    "mean_squared_displacement",
    "molecular_bonds",
    "rdf",
    "read_log",
    "simulate",
    "stored_config",
    "unwrap",
]
