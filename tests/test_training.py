import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
from freecg_plugin.training import TrainConfig, load_config  # noqa: E402
from freecg_plugin.training.run import load_data, train  # noqa: E402



def tiny_config(output, **optim):
    return TrainConfig.from_dict({
        "data": {"dataset": "rmd17/ethanol", "n_train": 20, "n_val": 4, "n_test": 8},
        "model": {"host": "visnet", "args": {"lmax": 2, "num_heads": 2, "num_layers": 2, "hidden_channels": 16, "num_rbf": 8}, "cutoff": 4.0,
                  "freecg": {"groups": 2}},
        "optim": {"lr": 2e-3, "batch_size": 4, "max_epochs": 6, "warmup_steps": 5, **optim},
        "output": str(output),
        "accelerator": "cpu",
    })


def train_loss(task, data, cutoff=4.0):
    from freecg_plugin.training.task import frame_loader

    losses = []
    for batch in frame_loader(data, cutoff, 4, shuffle=False):
        out = task.predict_batch(batch)
        losses.append(0.05 * (out["energy"] - batch["energy"]).square().mean() + 0.95 * (out["forces"] - batch["forces"]).square().mean())
    return float(torch.stack(losses).mean())


def test_thirty_steps_lower_the_loss_and_resume_continues(tmp_path):
    from freecg_plugin.training.task import PotentialTask

    config = tiny_config(tmp_path / "run")
    train_set = load_data(config.data)[0]
    torch.manual_seed(config.optim.seed)
    fresh = PotentialTask(config.to_dict(), float(train_set.energy.mean()), float(train_set.energy.std()), "kcal/mol")
    before = train_loss(fresh, train_set)
    results = train(config)  # 6 epochs x 5 steps = 30 steps
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 30
    after = train_loss(PotentialTask.load_from_checkpoint(last), train_set)
    assert after < 0.9 * before, (before, after)  # same initial weights (same seed) before training
    assert results["forces_mae"] > 0 and (tmp_path / "run" / "force_parity.png").stat().st_size > 0
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 0
    # resume: continues from step 30 to epoch 8
    train(config, resume=str(last), max_epochs=8)
    resumed = torch.load(last, map_location="cpu", weights_only=False)
    assert resumed["global_step"] == 40 and resumed["epoch"] == state["epoch"] + 2


def test_config_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lr: 1e-3, lerning_rate: 2}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: optim: unknown keys \['lerning_rate'\]"):
        load_config(bad)
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: malformed YAML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_cli_help_and_errors(tmp_path):
    freecg = Path(sys.executable).with_name("freecg")
    for command in ("train", "test"):
        result = subprocess.run([str(freecg), command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "--" in result.stdout
    (tmp_path / "c.yaml").write_text("modle: {}\n")
    result = subprocess.run([str(freecg), "train", "--config", str(tmp_path / "c.yaml")], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown sections ['modle']" in result.stderr


def test_ase_calculator_in_md(tmp_path):
    ase = pytest.importorskip("ase")
    from ase.md.verlet import VelocityVerlet

    from freecg_plugin.calculator import FreeCGCalculator

    config = tiny_config(tmp_path / "run", max_epochs=1)
    train(config)
    calc = FreeCGCalculator(str(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    test_set = load_data(config.data)[2]
    s = test_set.structures[0]
    atoms = ase.Atoms(numbers=s.numbers.numpy(), positions=s.positions.numpy())
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    # forces are -dE/dx in eV/Å
    h = 1e-4
    shifted = atoms.copy()
    shifted.calc = calc
    shifted.positions[0, 0] += h
    e_plus = shifted.get_potential_energy()
    shifted.positions[0, 0] -= 2 * h
    e_minus = shifted.get_potential_energy()
    assert np.isclose(-(e_plus - e_minus) / (2 * h), forces[0, 0], rtol=1e-4, atol=1e-6)
    VelocityVerlet(atoms, 0.5 * ase.units.fs).run(5)
    assert np.isfinite(atoms.get_potential_energy()) and atoms.get_potential_energy() != energy
    # periodic: stress is reported
    cell = np.diag([6.0, 6.0, 6.0])
    box = ase.Atoms(numbers=s.numbers.numpy(), positions=s.positions.numpy() % 6.0, cell=cell, pbc=True)
    box.calc = calc
    assert box.get_stress().shape == (6,)
    # bad inputs: elements the model never saw, non-finite positions
    alien = ase.Atoms("CHOAu", positions=np.eye(4, 3) * 1.5)
    alien.calc = calc
    with pytest.raises(ValueError, match=r"unknown elements Z=\[79\]"):
        alien.get_potential_energy()
    broken = atoms.copy()
    broken.positions[0, 0] = np.nan
    broken.calc = calc
    with pytest.raises(ValueError, match="non-finite"):
        broken.get_potential_energy()
