"""A user's own data: separate train/test files, explicit units and keys, frames of different
sizes, stress, slabs, `freecg evaluate`, and clear errors before any training starts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")
ase = pytest.importorskip("ase")
from ase.calculators.emt import EMT  # noqa: E402
from ase.io import read, write  # noqa: E402

from freecg_plugin.data import load_ase, load_npz  # noqa: E402
from freecg_plugin.data.splits import atom_energies, load_data  # noqa: E402
from freecg_plugin.evaluation import evaluate_file  # noqa: E402
from freecg_plugin.training import (  # noqa: E402
    TrainConfig,
    load_config,
    train,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT / "examples" / "data" / "water" / "water64_deepmd_400.npz"
FREECG = Path(sys.executable).with_name("freecg")
TINY_MODEL = {"host": "visnet", "args": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 8, "num_rbf": 8}, "cutoff": 3.5,
              "freecg": {"groups": 2}}  # fmt: skip
TINY_OPTIM = {"lr": 2e-3, "batch_size": 2, "max_epochs": 1, "warmup_steps": 2}


def as_atoms(data, indices):
    frames = []
    for i in indices:
        s = data.structures[i]
        atoms = ase.Atoms(numbers=s.numbers.numpy(), positions=s.positions.numpy(), cell=s.cell.numpy(), pbc=True)
        atoms.info["REF_energy"] = float(data.energy[i])
        atoms.arrays["REF_forces"] = data.forces[i].numpy()
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def water_files(tmp_path_factory):
    """The shipped water frames written out as a train file and a test file, with custom keys."""
    folder = tmp_path_factory.mktemp("water")
    data = load_npz(WATER)
    write(folder / "train.xyz", as_atoms(data, range(0, 10)), format="extxyz")
    write(folder / "test.xyz", as_atoms(data, range(390, 394)), format="extxyz")
    return folder


@pytest.mark.slow
def test_separate_train_and_test_files_then_evaluate_reproduces_the_test(water_files, tmp_path):
    config_file = water_files / "config.yaml"  # relative data paths: relative to this file
    config_file.write_text(json.dumps({
        "data": {"train": "train.xyz", "test": "test.xyz", "n_val": 2, "energy_unit": "eV", "keys": {"energy": "REF_energy", "forces": "REF_forces"}},
        "model": TINY_MODEL, "optim": TINY_OPTIM, "output": str(tmp_path / "run"), "accelerator": "cpu",
    }))  # fmt: skip
    config = load_config(config_file)
    assert config.data.train == str(water_files / "train.xyz")
    train_set, val_set, test_set = load_data(config.data)
    assert (len(train_set), len(val_set), len(test_set)) == (8, 2, 4) and test_set.source.endswith("test.xyz")
    results = train(config)
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    run = subprocess.run(
        [str(FREECG), "evaluate", "--checkpoint", str(checkpoint), "--data", str(water_files / "test.xyz"), "--output", str(tmp_path / "pred.xyz")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"| forces (per Å) | {results['forces_mae']:.4f} |" in run.stdout
    assert f"| energy | {results['energy_mae']:.4f} |" in run.stdout
    predicted = read(tmp_path / "pred.xyz", index=":")
    assert len(predicted) == 4 and (tmp_path / "pred_force_parity.png").stat().st_size > 0
    errors = np.concatenate([np.abs(a.get_forces() - a.arrays["ref_forces"]).ravel() for a in predicted])
    assert errors.mean() == pytest.approx(results["forces_mae"], rel=1e-5)
    assert predicted[0].info["ref_energy"] == pytest.approx(float(test_set.energy[0]))


def test_missing_unit_and_empty_splits_fail_before_training(water_files, tmp_path):
    base = {"model": TINY_MODEL, "optim": TINY_OPTIM, "output": str(tmp_path / "run")}
    with pytest.raises(ValueError, match="train.xyz: data.energy_unit is required"):
        load_data(TrainConfig.from_dict({**base, "data": {"train": str(water_files / "train.xyz"), "n_val": 2}}).data)
    no_test = TrainConfig.from_dict({**base, "data": {"train": str(water_files / "train.xyz"), "n_train": 8, "n_val": 2, "energy_unit": "eV",
                                                      "keys": {"energy": "REF_energy", "forces": "REF_forces"}}})  # fmt: skip
    with pytest.raises(ValueError, match="no test frames left"):
        train(no_test)
    assert not (tmp_path / "run").exists()  # nothing started
    with pytest.raises(ValueError, match=r"frame 0 lacks 'energy' or 'forces'.*set data.keys"):
        load_data(TrainConfig.from_dict({**base, "data": {"train": str(water_files / "train.xyz"), "n_val": 2, "energy_unit": "eV"}}).data)
    with pytest.raises(ValueError, match="give one of val, val_fraction, n_val"):
        TrainConfig.from_dict({**base, "data": {"train": "x.xyz", "n_val": 2, "val_fraction": 0.1}})
    with pytest.raises(FileNotFoundError, match="nowhere.xyz: no such file"):
        load_data(TrainConfig.from_dict({**base, "data": {"train": str(tmp_path / "nowhere.xyz"), "n_val": 2, "energy_unit": "eV"}}).data)


def emt_frames(sizes, seed, pbc=True, vacuum=None):
    """Real EMT labels (energy, forces, stress) for copper cells of several sizes, rattled."""
    from ase.build import bulk, fcc111

    rng = np.random.default_rng(seed)
    frames = []
    for size in sizes:
        atoms = fcc111("Cu", (2, 2, size), vacuum=vacuum) if vacuum else bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, size))
        atoms.pbc = pbc
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces()
        if all(atoms.pbc):
            atoms.get_stress()
        frames.append(atoms)
    return frames


def test_frames_of_different_sizes_with_stress_train_per_atom_with_reference_energies(tmp_path):
    write(tmp_path / "cu.xyz", emt_frames([1, 2, 1, 2, 3, 1, 2, 3], seed=0), format="extxyz")
    data = load_ase(tmp_path / "cu.xyz", "eV")
    assert data.stress is not None and data.stress.shape == (8, 3, 3)
    config = TrainConfig.from_dict({
        "data": {"train": str(tmp_path / "cu.xyz"), "n_train": 5, "n_val": 1, "energy_unit": "eV", "reference_energies": {"Cu": -0.5}},
        "model": {**TINY_MODEL, "freecg": {"groups": 2}}, "optim": {**TINY_OPTIM, "stress_weight": 1.0, "energy_loss": "auto"},
        "output": str(tmp_path / "run"), "accelerator": "cpu",
    })  # fmt: skip
    assert atom_energies(config.data, data) == {29: -0.5}
    fitted = TrainConfig.from_dict({**config.to_dict(), "data": {**config.to_dict()["data"], "reference_energies": "auto"}})
    counts, energies = data.atom_counts.double().numpy(), data.energy.numpy()
    # auto: the frames differ in composition, so per-element energies are fitted by least squares
    assert atom_energies(fitted.data, data)[29] == pytest.approx(counts @ energies / (counts @ counts))
    water = load_npz(WATER).subset(range(5))
    assert atom_energies(fitted.data, water) is None  # one composition: the host's own mean suffices
    results = train(config)
    assert config.optim.energy_loss == "per_atom"
    assert np.isfinite(results["stress_mae"]) and results["stress_mae"] > 0
    write(tmp_path / "nostress.xyz", emt_frames([1, 1, 1, 1], seed=1, pbc=False), format="extxyz")
    with pytest.raises(ValueError, match="nostress.xyz: .*stress"):
        train(
            TrainConfig.from_dict(
                {**config.to_dict(), "data": {**config.to_dict()["data"], "train": str(tmp_path / "nostress.xyz"), "n_train": 2}}
            )
        )


def test_dummy_lattice_with_pbc_false_is_a_molecule_and_slabs_keep_their_periodicity(tmp_path):
    molecule = emt_frames([1], seed=2, pbc=False)[0]
    molecule.cell = np.diag([1.0, 1.0, 1.0])  # a dummy lattice, as in many public sets
    slab = emt_frames([3], seed=3, pbc=(True, True, False), vacuum=6.0)[0]
    write(tmp_path / "mixed.xyz", [molecule, slab], format="extxyz")
    data = load_ase(tmp_path / "mixed.xyz", "eV")
    assert data.structures[0].cell is None and not data.structures[0].periodic
    assert data.structures[1].pbc == (True, True, False) and not data.structures[1].fully_periodic


def test_slab_in_training_and_in_the_ase_calculator(tmp_path):
    from freecg_plugin.atomistic import collate
    from freecg_plugin.integrations import FreeCGCalculator
    from freecg_plugin.neighbors import neighbor_list

    frames = emt_frames([3, 3, 3, 3, 3, 3], seed=4, pbc=(True, True, False), vacuum=6.0)
    write(tmp_path / "slab.xyz", frames, format="extxyz")
    data = load_ase(tmp_path / "slab.xyz", "eV")
    # periodic images in x and y only: every neighbour across the vacuum gap is absent
    s = data.structures[0]
    edges, shifts = neighbor_list(s.positions, 3.0, s.cell, s.pbc)
    assert shifts[:, 2].abs().sum() == 0 and shifts[:, :2].abs().sum() > 0
    assert collate([s], 3.0).edge_index.shape[1] == edges.shape[1]
    config = TrainConfig.from_dict({"data": {"train": str(tmp_path / "slab.xyz"), "n_train": 4, "n_val": 1, "energy_unit": "eV"},
                                    "model": TINY_MODEL, "optim": TINY_OPTIM, "output": str(tmp_path / "run"), "accelerator": "cpu"})  # fmt: skip
    train(config)
    atoms = frames[0].copy()
    atoms.calc = FreeCGCalculator(str(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    forces = atoms.get_forces()
    h, i = 1e-4, 3
    plus, minus = atoms.copy(), atoms.copy()
    plus.calc = minus.calc = atoms.calc
    plus.positions[i, 2] += h
    e_plus = plus.get_potential_energy()
    minus.positions[i, 2] -= h
    e_minus = minus.get_potential_energy()
    assert forces[i, 2] == pytest.approx(-(e_plus - e_minus) / (2 * h), rel=1e-4, abs=1e-6)
    moved = atoms.copy()
    moved.calc = atoms.calc
    moved.positions[:, :2] += moved.cell[0, :2]  # a whole lattice vector in the periodic plane: same energy
    assert moved.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)


@pytest.mark.slow
def test_evaluate_errors_are_one_line(water_files, tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint")
    run = subprocess.run(
        [str(FREECG), "evaluate", "--checkpoint", str(bad), "--data", str(water_files / "test.xyz")], capture_output=True, text=True
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "broken.ckpt: not a readable freecg checkpoint" in run.stderr
    run = subprocess.run(
        [str(FREECG), "evaluate", "--checkpoint", str(tmp_path / "none.ckpt"), "--data", "x.xyz"], capture_output=True, text=True
    )
    assert run.returncode == 2 and "none.ckpt: no such checkpoint" in run.stderr


def test_a_test_file_with_unseen_elements_is_refused_by_name(tmp_path):
    frames = emt_frames([1, 1, 1, 1, 1], seed=5)
    write(tmp_path / "train.xyz", frames, format="extxyz")
    alien = emt_frames([1], seed=6)[0]
    alien.numbers[0] = 79  # gold: EMT knows it, the model does not
    alien.calc = EMT()
    alien.get_potential_energy()
    write(tmp_path / "alien.xyz", [alien], format="extxyz")
    config = TrainConfig.from_dict({"data": {"train": str(tmp_path / "train.xyz"), "n_train": 3, "n_val": 1, "energy_unit": "eV"},
                                    "model": TINY_MODEL, "optim": TINY_OPTIM, "output": str(tmp_path / "run"), "accelerator": "cpu"})  # fmt: skip
    train(config)
    with pytest.raises(ValueError, match=r"alien.xyz: unknown elements Z=\[79\]"):
        evaluate_file(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(tmp_path / "alien.xyz"))
    config.data.test = str(tmp_path / "alien.xyz")
    with pytest.raises(ValueError, match=r"alien.xyz: test frames hold elements Z=\[79\]"):
        load_data(config.data)
