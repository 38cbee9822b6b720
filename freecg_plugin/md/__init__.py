"""Molecular dynamics with FreeCG models: observables of trajectories and stability criteria."""

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
from .stability import BOND_TOLERANCE, bond_lengths, first_bond_failure, first_rdf_failure, molecular_bonds

__all__ = [
    "BOND_TOLERANCE",
    "Diffusivity",
    "EnergyDrift",
    "bond_lengths",
    "diffusivity",
    "distance_histogram",
    "energy_drift",
    "first_bond_failure",
    "first_rdf_failure",
    "histogram_mae",
    "mean_squared_displacement",
    "molecular_bonds",
    "rdf",
    "unwrap",
]
