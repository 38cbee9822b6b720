"""Write an npz data file (rMD17, sGDML, or periodic ``Z, R, cell, E, F``) as extxyz for nequip.

    python examples/nequip/npz_to_extxyz.py examples/data/water/water64_deepmd_400.npz data/water.xyz

nequip's ``NPZDataset`` reads rMD17 files directly (see ``aspirin.yaml``) but has no way to say
that a cell is periodic, so periodic sets go through extxyz, which carries the cell, ``pbc``,
energy and forces per frame. Values are written in the file's own units (``--energy-unit`` says
what they are when the layout does not); the output is written to a temporary name and renamed,
so an existing file is never half-replaced.
"""

import argparse
from pathlib import Path

import ase
import ase.io
from ase.calculators.singlepoint import SinglePointCalculator

from freecg_plugin.data import load_npz
from freecg_plugin.files import write_atomic


def to_atoms(data) -> list:
    frames = []
    for structure, energy, forces in zip(data.structures, data.energy.tolist(), data.forces):
        atoms = ase.Atoms(
            numbers=structure.numbers.numpy(),
            positions=structure.positions.numpy(),
            cell=None if structure.cell is None else structure.cell.numpy(),
            pbc=structure.pbc,
        )
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces.numpy())
        frames.append(atoms)
    return frames


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="npz file")
    parser.add_argument("output", type=Path, help="extxyz file to write")
    parser.add_argument(
        "--energy-unit", default=None, help="unit of the file's energies (default: kcal/mol for rMD17/sGDML, eV for periodic)"
    )
    args = parser.parse_args(argv)
    data = load_npz(args.source, args.energy_unit)
    frames = to_atoms(data)
    write_atomic(args.output, lambda tmp: ase.io.write(tmp, frames, format="extxyz"))
    print(f"{args.output}: {len(frames)} frames from {args.source} (energies in {data.energy_unit}, forces per Å)")


if __name__ == "__main__":
    main()
