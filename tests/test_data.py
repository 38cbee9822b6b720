from pathlib import Path

import numpy as np
import pytest
import torch

from freecg_plugin.data import convert_energy, load_ase, load_npz, load_rmd17_split

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def test_rmd17_official_split():
    train, test = load_rmd17_split(DATA / "rmd17", "aspirin", "01")
    assert len(train) == len(test) == 1000 and train.energy_unit == "kcal/mol"
    raw = np.load(DATA / "rmd17" / "rmd17_aspirin_test_01.npz")
    assert torch.allclose(test.forces[3], torch.tensor(raw["forces"][3], dtype=torch.float64))
    assert train.elements == [1, 6, 8]


@pytest.mark.parametrize(
    "name, frames, unit, periodic",
    [
        ("water/water64_deepmd_400.npz", 400, "eV", True),
        ("lips/lips_devset200.npz", 200, "eV", True),
        ("md17_ccsd/ethanol_ccsd_t-train.npz", 1000, "kcal/mol", False),
    ],
)
def test_npz_flavours(name, frames, unit, periodic):
    data = load_npz(DATA / name)
    assert len(data) == frames and data.energy_unit == unit
    assert data.structures[0].pbc == periodic and (data.structures[0].cell is not None) == periodic


def test_extxyz_with_explicit_units():
    md22 = load_ase(DATA / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz", "kcal/mol", keys={"energy": "Energy"})
    assert len(md22) == 5 and md22.structures[0].positions.shape == (42, 3)
    fixture = load_ase(DATA / "fixtures" / "ethanol_reduced_100.xyz", "kcal/mol")
    assert len(fixture) == 100 and fixture.energy[0] == pytest.approx(-97079.92222178938)
    with pytest.raises(ValueError, match="lacks 'energy'"):
        load_ase(DATA / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz", "kcal/mol")
    with pytest.raises(ValueError, match="energy unit required"):
        load_ase(DATA / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz", None)


def test_unit_conversion_round_trip():
    assert convert_energy(1.0, "kcal/mol", "eV") == pytest.approx(0.0433641, rel=1e-6)
    assert convert_energy(convert_energy(2.5, "eV", "kcal/mol"), "kcal/mol", "eV") == pytest.approx(2.5)
    with pytest.raises(ValueError, match="unknown energy unit"):
        convert_energy(1.0, "kcal", "eV")


def test_to_unit_converts_energies_and_forces():
    train, _ = load_rmd17_split(DATA / "rmd17", "ethanol", 1)  # YAML's `split: 01` is the integer 1
    ev = train.subset(range(3)).to_unit("eV")
    assert ev.energy_unit == "eV"
    assert torch.allclose(ev.forces[1], train.forces[1] * 0.0433641043)


def test_corrupt_and_mismatched_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz: not an npz archive"):
        load_npz(broken)
    odd = tmp_path / "odd.npz"
    np.savez(odd, foo=np.zeros(3))
    with pytest.raises(ValueError, match="odd.npz: keys"):
        load_npz(odd)
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, z=np.array([1, 1]), R=np.zeros((4, 2, 3)), E=np.zeros(4), F=np.zeros((4, 3, 3)))
    with pytest.raises(ValueError, match="mismatched.npz: shapes do not match"):
        load_npz(mismatched)
    nan = tmp_path / "nan.npz"
    np.savez(nan, z=np.array([1, 1]), R=np.full((2, 2, 3), np.nan), E=np.zeros(2), F=np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="nan.npz: non-finite values in positions"):
        load_npz(nan)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")
