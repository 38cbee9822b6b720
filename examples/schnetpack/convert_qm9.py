"""Convert QM9 in the project's npz format into the database SchNetPack's ``QM9`` data module reads,
so that ``spktrain experiment=qm9_atomwise`` / ``qm9_dipole`` run without downloading.

    python examples/schnetpack/convert_qm9.py examples/data/qm9/qm9_subset10k_seed0.npz data/qm9.db
    spktrain experiment=qm9_atomwise model/representation=painn_freecg data.datapath=$PWD/data/qm9.db
    spktrain experiment=qm9_dipole model/representation=painn_freecg data.datapath=$PWD/data/qm9.db

Input: the shipped 10k subset, or the full set made by ``freecg data prepare qm9``. Output: an
``ASEAtomsData`` database with SchNetPack's QM9 property names and units (Hartree, debye, bohr^3,
bohr^2, GHz, cal/mol/K) and QM9's atom references in its metadata (as SchNetPack's own download
stores them), written to a temporary name and renamed. Neither set holds QM9's 3,054 molecules
that failed the consistency check, so keep SchNetPack's ``remove_uncharacterized: True``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from freecg_plugin.properties.qm9 import ATOM_REFERENCES, ELEMENTS

# project npz column -> SchNetPack QM9 property, unit
COLUMNS = {
    "RotA_GHz": ("rotational_constant_A", "GHz"),
    "RotB_GHz": ("rotational_constant_B", "GHz"),
    "RotC_GHz": ("rotational_constant_C", "GHz"),
    "Dipole_debye": ("dipole_moment", "Debye"),
    "Polarizability_bohr3": ("isotropic_polarizability", "a0 a0 a0"),
    "HOMO_au": ("homo", "Ha"),
    "LUMO_au": ("lumo", "Ha"),
    "HOMO_LUMO_gap_au": ("gap", "Ha"),
    "R2_bohr2": ("electronic_spatial_extent", "a0 a0"),
    "ZPVE_au": ("zpve", "Ha"),
    "InternalEnergy_0K_au": ("energy_U0", "Ha"),
    "InternalEnergy_298K_au": ("energy_U", "Ha"),
    "Enthalphy_298K_au": ("enthalpy_H", "Ha"),
    "GibbsFreeEnergy_298K_au": ("free_energy", "Ha"),
    "Heatcapacity_Cv_cal_mol_K": ("heat_capacity", "cal/mol/K"),
}
CV_ATOM_REFERENCE = 2.981  # cal/mol/K, every element (QM9's atomref table)


def atom_references() -> dict:
    """SchNetPack's atomref metadata: per property, a list indexed by Z (100 entries)."""
    table = {"zpve": {}, "energy_U0": ATOM_REFERENCES["U0"], "energy_U": ATOM_REFERENCES["U"]}
    table.update(
        enthalpy_H=ATOM_REFERENCES["H"], free_energy=ATOM_REFERENCES["G"], heat_capacity=dict.fromkeys(ELEMENTS, CV_ATOM_REFERENCE)
    )
    out = {}
    for name, values in table.items():
        row = np.zeros(100)
        for z, value in values.items():
            row[z] = value
        out[name] = row.tolist()
    return out


def convert(source: Path, database: Path, limit: int | None = None) -> int:
    """Write the molecules of ``source`` (the first ``limit``) to ``database``; returns how many."""
    from schnetpack.data import ASEAtomsData

    if database.exists():
        raise FileExistsError(f"{database} exists; remove it first (SchNetPack would read the old one)")
    with np.load(source, allow_pickle=False) as data:
        names = [str(n) for n in data["prop_names"]]
        missing = sorted(set(COLUMNS) - set(names))
        if missing:
            raise ValueError(f"{source}: not a QM9 npz with every property (missing {missing})")
        ptr, numbers, positions, props = data["ptr"], data["Z"], data["R"], data["props"]
    count = len(ptr) - 1 if limit is None else min(limit, len(ptr) - 1)
    tmp = database.with_name(database.stem + ".part.db")
    tmp.unlink(missing_ok=True)
    dataset = ASEAtomsData.create(
        str(tmp), distance_unit="Ang", property_unit_dict={p: u for p, u in COLUMNS.values()}, atomrefs=atom_references()
    )
    systems = []
    for m in range(count):
        a, b = ptr[m], ptr[m + 1]
        system = {COLUMNS[c][0]: np.array([props[m, names.index(c)]]) for c in COLUMNS}
        system.update(
            _atomic_numbers=numbers[a:b].astype(np.int64), _positions=positions[a:b], _cell=np.zeros((3, 3)), _pbc=np.zeros(3, bool)
        )
        systems.append(system)
    dataset.add_systems(property_list=systems)
    os.replace(tmp, database)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="QM9 npz (examples/data/qm9/qm9_subset10k_seed0.npz, or freecg data path qm9/qm9pack)")
    parser.add_argument("database", type=Path, help="the SchNetPack database to write (e.g. data/qm9.db)")
    parser.add_argument("--limit", type=int, help="only the first N molecules")
    args = parser.parse_args()
    args.database.parent.mkdir(parents=True, exist_ok=True)
    print(f"{convert(args.source, args.database, args.limit)} molecules -> {args.database}")


if __name__ == "__main__":
    main()
