import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("lightning")
from freecg_plugin.data.splits import load_data  # noqa: E402
from freecg_plugin.training import (  # noqa: E402
    TrainConfig,
    load_config,
    train,  # noqa: E402
)


def tiny_config(output, **optim):
    return TrainConfig.from_dict(
        {
            "data": {"dataset": "rmd17/ethanol", "n_train": 20, "n_val": 4, "n_test": 8},
            "model": {
                "host": "visnet",
                "args": {"lmax": 2, "num_heads": 2, "num_layers": 2, "hidden_channels": 16, "num_rbf": 8},
                "cutoff": 4.0,
                "freecg": {"groups": 2},
            },
            "optim": {"lr": 2e-3, "batch_size": 4, "max_epochs": 6, "warmup_steps": 5, **optim},
            "output": str(output),
            "accelerator": "cpu",
        }
    )


def train_loss(task, data, cutoff=4.0):
    from freecg_plugin.data.loaders import frame_loader

    losses = []
    for batch in frame_loader(data, cutoff, 4, shuffle=False):
        out = task.predict_batch(batch)
        losses.append(0.05 * (out["energy"] - batch["energy"]).square().mean() + 0.95 * (out["forces"] - batch["forces"]).square().mean())
    return float(torch.stack(losses).mean())


def test_thirty_steps_lower_the_loss_and_resume_continues(tmp_path):
    from freecg_plugin.training import PotentialTask

    config = tiny_config(tmp_path / "run")
    train_set = load_data(config.data)[0]
    torch.manual_seed(config.optim.seed)
    fresh = PotentialTask(config.to_dict(), float(train_set.energy.mean()), float(train_set.energy.std()), "kcal/mol")
    before = train_loss(fresh, train_set)
    results = train(config)  # 6 epochs x 5 steps = 30 steps
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 30
    after = train_loss(PotentialTask.load_from_checkpoint(last, weights_only=True), train_set)
    assert after < 0.9 * before, (before, after)  # same initial weights (same seed) before training
    assert results["forces_mae"] > 0 and (tmp_path / "run" / "force_parity.png").stat().st_size > 0
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 0
    # resume: continues from step 30 to epoch 8
    train(config, resume=str(last), max_epochs=8)
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 40 and resumed["epoch"] == state["epoch"] + 2


def test_config_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {dataset: rmd17/ethanol, n_val: 5}\noptim: {lr: 1e-3, lerning_rate: 2}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: optim: unknown keys \['lerning_rate'\]"):
        load_config(bad)
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: malformed YAML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_cli_help_version_overrides_and_errors(tmp_path):
    freecg = Path(sys.executable).with_name("freecg")
    for command in ("train", "test", "evaluate", "compare", "data"):
        result = subprocess.run([str(freecg), command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "--" in result.stdout
    shown = subprocess.run([str(freecg), "train", "--help"], capture_output=True, text=True).stdout
    assert all(name in shown for name in ("small", "paper", "water", "lips", "own_data"))  # shipped configs listed
    version = subprocess.run([str(freecg), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("freecg-plugin ")
    (tmp_path / "c.yaml").write_text("modle: {}\n")
    result = subprocess.run([str(freecg), "train", "--config", str(tmp_path / "c.yaml")], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown sections ['modle']" in result.stderr
    # a shipped config by name, overrides on top; a relative data path on the command line is the working directory's
    printed = subprocess.run(
        [str(freecg), "train", "--config", "small", "--print-config", "optim.lr=0.01", "data.split=02", "model.freecg=null",
         "data.dataset=null", "data.train=mine.xyz", "data.energy_unit=eV"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    shown = yaml.safe_load(printed.stdout)
    assert shown["optim"]["lr"] == 0.01 and shown["data"]["split"] == "02" and shown["model"]["freecg"] is None
    assert shown["data"]["train"] == str(tmp_path / "mine.xyz") and shown["optim"]["max_epochs"] == 40
    for override, message in (("optim.lr", "not key=value"), ("data.n_train=1001", "1001 train + 50 validation frames asked, 1000 available"),
                              ("data.split=9", "no split '09'"), ("data.dataset=rmd17/uracil", "run: freecg data fetch rmd17/uracil --split 01")):  # fmt: skip
        result = subprocess.run([str(freecg), "train", "--config", "small", override], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, (override, result.stderr)
    assert not (tmp_path / "runs").exists()  # every error came before training


def test_yaml_split_01_is_split_01(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: rmd17/ethanol, split: 01, n_val: 5}\n")  # YAML reads 01 as the integer 1
    assert load_config(path).data.split == "01"


def test_ase_calculator_in_md(tmp_path):
    ase = pytest.importorskip("ase")
    from ase.md.verlet import VelocityVerlet

    from freecg_plugin.integrations import FreeCGCalculator

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


@pytest.mark.slow
def test_a_missing_extra_is_named_in_one_line(tmp_path):
    """With lightning absent, `freecg train` names the extra that installs it (no traceback)."""
    code = "import sys; sys.modules['lightning'] = None; from freecg_plugin.cli import main; sys.exit(main(['train', '--config', 'small']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "lightning is not installed; install it with: pip install 'freecg-plugin[train]'" in result.stderr


@pytest.mark.slow
def test_compare_takes_overrides_and_prints_the_plan(tmp_path):
    freecg = Path(sys.executable).with_name("freecg")
    result = subprocess.run(
        [
            str(freecg),
            "compare",
            "--preset",
            "quick",
            "--print-config",
            "seeds=[1,2,3]",
            "optim.max_epochs=3",
            "data.dataset=rmd17/toluene",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    plan = yaml.safe_load(result.stdout)
    assert plan["seeds"] == [1, 2, 3] and plan["optim"]["max_epochs"] == 3 and plan["data"]["dataset"] == "rmd17/toluene"


def test_frame_graphs_are_built_once_and_batch_as_collate_does():
    from freecg_plugin.atomistic import collate
    from freecg_plugin.data.loaders import FrameCollate

    config = TrainConfig.from_dict({"data": {"dataset": "water/deepmd64", "n_train": 6, "n_val": 2, "n_test": 2}})
    train_set, _, _ = load_data(config.data)
    frames = FrameCollate(train_set, 4.0)
    batch = frames([3, 1, 4])
    expected = collate([train_set.structures[i] for i in (3, 1, 4)], 4.0)
    graph = batch["graph"]
    assert torch.equal(graph.edge_index, expected.edge_index) and torch.equal(graph.shifts, expected.shifts.float())
    assert torch.equal(graph.batch, expected.batch) and torch.equal(graph.cell, expected.cell.float())
    assert graph.edge_index.dtype == torch.long and graph.num_graphs == 3
    assert sorted(frames.graphs._graphs) == [1, 3, 4]
    cached = frames.graphs._graphs[1].edge_index
    again = frames([1, 0])  # frame 1 is not rebuilt
    assert frames.graphs._graphs[1].edge_index is cached and sorted(frames.graphs._graphs) == [0, 1, 3, 4]
    assert torch.equal(again["graph"].edge_index[:, : cached.shape[1]], cached.long())

    uncached = FrameCollate(train_set, 4.0, cache_graphs=False)  # data.cache_graphs: false
    rebuilt = uncached([3, 1, 4])["graph"]
    assert not uncached.graphs._graphs and torch.equal(rebuilt.edge_index, graph.edge_index)
    assert torch.equal(rebuilt.shifts, graph.shifts) and torch.equal(rebuilt.positions, graph.positions)
    with pytest.raises(ValueError, match="data.cache_graphs must be true or false"):
        TrainConfig.from_dict({"data": {"dataset": "water/deepmd64", "n_val": 2, "cache_graphs": "no"}})


def test_output_to_a_file_shows_one_line_per_epoch_and_counts_the_parameters_once(tmp_path):
    config = tiny_config(tmp_path / "run", max_epochs=3).to_dict()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with open(tmp_path / "job.log", "w") as log:  # as a batch job's output: not a terminal
        done = subprocess.run(
            [sys.executable, "-m", "freecg_plugin.cli", "train", "--config", str(tmp_path / "c.yaml")], stdout=log, stderr=log
        )
    text = (tmp_path / "job.log").read_text()
    assert done.returncode == 0, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"], text[-3000:]
    assert all("train_loss " in line and "val_forces_mae " in line and " s left" in line for line in lines)
    assert lines[-1].endswith("~0.0 s left")
    assert "Trainable params" not in text and text.count(" parameters on ") == 1  # one count: the model's, not the EMA copy's too


def test_deterministic_training_repeats_bit_for_bit(tmp_path):
    """``optim.deterministic``: torch's deterministic algorithms only, and two runs with the same
    seed give the same numbers (the global switch is put back for the other tests)."""
    try:
        first = train(tiny_config(tmp_path / "a", deterministic=True, max_epochs=2))
        assert torch.are_deterministic_algorithms_enabled()
        second = train(tiny_config(tmp_path / "b", deterministic=True, max_epochs=2))
    finally:
        torch.use_deterministic_algorithms(False)
    for key in ("energy_mae", "forces_mae", "forces_rmse", "epochs"):
        assert first[key] == second[key], key


def test_a_run_resumed_mid_training_trains_like_the_uninterrupted_run(tmp_path):
    """Stopped after epoch 2 of 4 and resumed: the same batches in the same order (the shuffle
    depends on the seed and the epoch, not on how many processes drew from it), so the same
    weights bit for bit."""
    whole = tiny_config(tmp_path / "whole", max_epochs=4)
    train(whole)
    cut = tiny_config(tmp_path / "cut", max_epochs=4)
    train(cut, max_epochs=2)
    train(cut, resume=str(tmp_path / "cut" / "checkpoints" / "last.ckpt"))
    a, b = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True) for run in ("whole", "cut"))
    assert a["epoch"] == b["epoch"] == 4
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name


def test_the_shuffle_depends_on_seed_and_epoch_only():
    from freecg_plugin.data.loaders import EpochShuffle

    first = EpochShuffle(50, seed=3)
    orders = [list(first) for _ in range(3)]
    assert len({tuple(o) for o in orders}) == 3 and all(sorted(o) == list(range(50)) for o in orders)
    later = EpochShuffle(50, seed=3)
    later.set_epoch(2)
    assert list(later) == orders[2]
    assert list(EpochShuffle(50, seed=4)) != orders[0]
