"""Molecular properties from equivariant features: readouts (atom-wise sums and means, dipole
moment, electronic spatial extent) and the QM9 data (targets, units, atom references)."""

from .qm9 import ATOM_REFERENCES, ELEMENTS, QM9_TARGETS, PropertyData, Target, load_qm9, prepare_qm9
from .readouts import AtomwiseReadout, DipoleReadout, GatedEquivariantBlock, SpatialExtentReadout, centre_of_mass

__all__ = [
    "ATOM_REFERENCES",
    "AtomwiseReadout",
    "DipoleReadout",
    "ELEMENTS",
    "GatedEquivariantBlock",
    "PropertyData",
    "QM9_TARGETS",
    "SpatialExtentReadout",
    "Target",
    "centre_of_mass",
    "load_qm9",
    "prepare_qm9",
]
