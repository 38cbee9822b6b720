"""`freecg md`: energy conservation, exact resume after a kill, stopping when unstable, periodic
wrapping, one-line errors before any step, and `freecg md-compare` end to end. Real models (tiny,
trained here), real ASE integrators, the real CLI."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("lightning")
ase = pytest.importorskip("ase")
from ase.io import read, write  # noqa: E402
from test_user_data import emt_frames  # noqa: E402

from freecg_plugin.md import MDConfig, analyse, read_log, simulate  # noqa: E402
from freecg_plugin.training import TrainConfig, train  # noqa: E402

FREECG = Path(sys.executable).with_name("freecg")
ETHANOL = {"dataset": "rmd17/ethanol", "n_train": 20, "n_val": 4, "n_test": 4}
MODEL = {"host": "visnet", "args": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 16, "num_rbf": 8}, "cutoff": 4.0}
OPTIM = {"lr": 2e-3, "batch_size": 4, "max_epochs": 2, "warmup_steps": 2}


def _train(output: Path, data: dict, freecg=None) -> Path:
    config = {"data": data, "model": {**MODEL, "freecg": freecg}, "optim": OPTIM, "output": str(output), "accelerator": "cpu"}
    train(TrainConfig.from_dict(config))
    return output / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def ethanol_model(tmp_path_factory):
    """ViSNet + FreeCG on 20 ethanol frames (H, C, O)."""
    return _train(tmp_path_factory.mktemp("ethanol") / "run", ETHANOL, {"groups": 2})


@pytest.fixture(scope="module")
def copper_model(tmp_path_factory):
    """ViSNet + FreeCG on rattled 8-atom copper cells labelled by EMT (eV)."""
    folder = tmp_path_factory.mktemp("copper")
    write(folder / "cu.xyz", emt_frames([2] * 12, seed=5), format="extxyz")
    data = {"train": str(folder / "cu.xyz"), "n_train": 8, "n_val": 2, "energy_unit": "eV"}
    return _train(folder / "run", data, {"groups": 2})


def _max_energy_error(log) -> float:
    """Largest |E_total(t) - E_total(0)| (eV)."""
    return float(np.abs(log["total_eV"] - log["total_eV"][0]).max())


@pytest.mark.slow
def test_nve_conserves_energy_and_one_percent_wrong_forces_break_the_bound(ethanol_model, tmp_path):
    from ase.md.verlet import VelocityVerlet

    from freecg_plugin.integrations import FreeCGCalculator

    config = MDConfig(checkpoint=str(ethanol_model), output=str(tmp_path / "nve"), ensemble="nve", temperature=100, time=0.2, log_every=5, stop_unstable=False)  # fmt: skip
    run = simulate(config, progress=False)
    assert run.steps == 400 and run.ns_per_day > 0  # a model this rough need not keep ethanol's bonds; energy is what is tested
    log = read_log(tmp_path / "nve" / "log.csv")
    bound = 2e-5 * 9  # eV: 0.02 meV/atom over 0.2 ps at 0.5 fs in float64 (measured: ~1e-5 eV in all)
    assert _max_energy_error(log) < bound, _max_energy_error(log)

    class OnePercentStrongerForces(FreeCGCalculator):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties, system_changes)
            self.results["forces"] = 1.01 * self.results["forces"]

    start = read(tmp_path / "nve" / "trajectory.extxyz", 0)  # same positions and momenta as the run
    start.calc = OnePercentStrongerForces(str(ethanol_model))
    totals = []
    dynamics = VelocityVerlet(start, timestep=0.5 * ase.units.fs)
    for _ in range(80):
        dynamics.run(5)
        totals.append(start.get_potential_energy() + start.get_kinetic_energy())
    broken = float(np.abs(np.array(totals) - log["total_eV"][0]).max())
    assert broken > bound, (broken, bound)

    result = analyse(tmp_path / "nve")
    assert abs(result["drift_meV_atom_ps"]) < 5 and result["reference_frames"] == 1000  # the training file: rMD17 split 01
    assert 0 < result["hr_mae"] < 2
    assert (tmp_path / "nve" / "energies.png").stat().st_size > 0 and (tmp_path / "nve" / "structure.png").stat().st_size > 0


def _md_command(checkpoint, output, *extra):
    return [str(FREECG), "md", "--checkpoint", str(checkpoint), "--output", str(output), "--quiet", *extra]


@pytest.mark.slow
def test_a_killed_langevin_run_resumes_bit_for_bit(ethanol_model, tmp_path):
    settings = ["--ensemble", "langevin", "--temperature", "50", "--time", "0.3", "--save-every", "20", "--seed", "3", "--keep-going"]
    assert subprocess.run(_md_command(ethanol_model, tmp_path / "whole", *settings), capture_output=True).returncode == 0
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["steps"] == 600
    process = subprocess.Popen(
        _md_command(ethanol_model, tmp_path / "cut", *settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    trajectory = tmp_path / "cut" / "trajectory.extxyz"
    deadline = time.time() + 120
    while (
        process.poll() is None and time.time() < deadline and (not trajectory.is_file() or trajectory.read_text().count("Properties=") < 12)
    ):
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)  # mid-run, possibly mid-write
    process.wait()
    saved = np.load(tmp_path / "cut" / "state.npz")
    assert 0 < int(saved["nsteps"]) < 600
    # settings come from the run; the heap allocator (a process setting) must not change a number
    resume = [str(FREECG), "md", "--output", str(tmp_path / "cut"), "--resume", "--quiet", "--heap-allocator"]
    resumed = subprocess.run(resume, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    whole, cut = read(tmp_path / "whole" / "trajectory.extxyz", ":"), read(trajectory, ":")
    assert len(whole) == len(cut) == 31
    for a, b in zip(whole, cut):
        assert a.info["step"] == b.info["step"]
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.get_momenta(), b.get_momenta())
    assert (tmp_path / "whole" / "log.csv").read_text() == (tmp_path / "cut" / "log.csv").read_text()


def test_nose_hoover_chain_resumes_with_its_thermostat(ethanol_model, tmp_path):
    base = dict(checkpoint=str(ethanol_model), ensemble="nose-hoover", temperature=350, tdamp=10.0, seed=1, save_every=10)
    simulate(MDConfig(output=str(tmp_path / "whole"), time=0.04, **base), progress=False)
    simulate(MDConfig(output=str(tmp_path / "parts"), time=0.02, **base), progress=False)
    state = np.load(tmp_path / "parts" / "state.npz")
    assert np.abs(state["thermostat_p_eta"]).max() > 0  # the chain moved: its state matters
    simulate(MDConfig(output=str(tmp_path / "parts"), time=0.04, **base), resume=True, progress=False)
    a, b = read(tmp_path / "whole" / "trajectory.extxyz", -1), read(tmp_path / "parts" / "trajectory.extxyz", -1)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.get_momenta(), a.get_momenta(), rtol=0, atol=1e-12)
    assert (tmp_path / "whole" / "log.csv").read_text() == (tmp_path / "parts" / "log.csv").read_text()


@pytest.mark.slow
def test_an_unstable_run_stops_with_a_message_and_keeps_what_was_written(ethanol_model, tmp_path):
    result = subprocess.run(
        _md_command(ethanol_model, tmp_path / "hot", "--temperature", "600", "--time", "0.5", "--bond-tolerance", "0.15"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "hot" / "summary.json").read_text())
    assert summary["status"] == "unstable" and "bond deviates" in summary["reason"]
    assert 0 < summary["stable_time"] < 0.5 and summary["steps"] < 1000
    assert "unstable from" in result.stdout
    log = read_log(tmp_path / "hot" / "log.csv")
    assert log["max_bond_deviation_A"][-1] > 0.15 and (log["max_bond_deviation_A"][:-1] <= 0.15).all()
    frames = read(tmp_path / "hot" / "trajectory.extxyz", ":")
    assert frames[-1].info["time_ps"] <= summary["stable_time"] + 1e-9
    again = subprocess.run(_md_command(ethanol_model, tmp_path / "hot", "--temperature", "600", "--time", "0.5", "--bond-tolerance", "0.15", "--resume"), capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0 and "unstable" in again.stdout  # an ended run is reported, not rerun


def test_periodic_md_wraps_atoms_and_conserves_energy_across_the_boundary(copper_model, tmp_path):
    from freecg_plugin.integrations import FreeCGCalculator

    start = emt_frames([2], seed=6)[0]
    start.calc = None
    write(tmp_path / "start.xyz", start, format="extxyz")
    config = MDConfig(checkpoint=str(copper_model), output=str(tmp_path / "cu"), structure=str(tmp_path / "start.xyz"), ensemble="nve", temperature=600, time=0.1, timestep=1.0, save_every=5, log_every=5)  # fmt: skip
    assert simulate(config, progress=False).status == "completed"
    frames = read(tmp_path / "cu" / "trajectory.extxyz", ":")
    fractional = np.stack([f.get_scaled_positions(wrap=False) for f in frames])
    assert (fractional >= 0).all() and (fractional < 1).all()
    jumps = np.abs(np.diff(fractional, axis=0)).max()
    assert jumps > 0.5  # some atom crossed a face and was wrapped to the other side
    log = read_log(tmp_path / "cu" / "log.csv")
    assert _max_energy_error(log) < 1e-3 * 8, _max_energy_error(log)  # continuous energy through the crossings
    assert np.isfinite(log["pressure_bar"]).all() and np.allclose(log["volume_A3"], start.get_volume())
    calc = FreeCGCalculator(str(copper_model))
    moved = start.copy()
    moved.positions[0] += start.cell[0] - start.cell[2]  # one atom by lattice vectors: the same crystal
    moved.calc, start.calc = calc, calc
    assert moved.get_potential_energy() == pytest.approx(start.get_potential_energy(), abs=1e-9)


def test_npt_changes_the_volume_and_resumes_with_its_barostat(copper_model, tmp_path):
    start = emt_frames([2], seed=7)[0]
    start.calc = None
    write(tmp_path / "start.xyz", start, format="extxyz")
    base = dict(checkpoint=str(copper_model), structure=str(tmp_path / "start.xyz"), ensemble="npt", temperature=300, timestep=1.0,
                pressure=1e4, tdamp=20.0, pdamp=50.0, save_every=5, log_every=5)  # fmt: skip
    simulate(MDConfig(output=str(tmp_path / "whole"), time=0.04, **base), progress=False)
    simulate(MDConfig(output=str(tmp_path / "parts"), time=0.02, **base), progress=False)
    simulate(MDConfig(output=str(tmp_path / "parts"), time=0.04, **base), resume=True, progress=False)
    log = read_log(tmp_path / "whole" / "log.csv")
    assert np.ptp(log["volume_A3"]) > 1e-3 * log["volume_A3"][0]  # the barostat moved the cell
    a, b = read(tmp_path / "whole" / "trajectory.extxyz", -1), read(tmp_path / "parts" / "trajectory.extxyz", -1)
    np.testing.assert_allclose(b.cell.array, a.cell.array, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-12)
    assert (tmp_path / "whole" / "log.csv").read_text() == (tmp_path / "parts" / "log.csv").read_text()


@pytest.mark.slow
def test_bad_input_fails_in_one_line_before_any_step(ethanol_model, copper_model, tmp_path):
    from ase import Atoms

    cases = {
        "unknown.xyz": (Atoms("CCl", positions=[[0, 0, 0], [1.7, 0, 0]]), "unknown elements Z=[17]"),
        "overlap.xyz": (Atoms("CH", positions=[[0, 0, 0], [0.2, 0, 0]]), "atoms 0 and 1 overlap (0.200 Å apart)"),
        "lonely.xyz": (Atoms("CHO", positions=[[0, 0, 0], [1.1, 0, 0], [20, 0, 0]]), "atoms [2] have no neighbour within 4.0 Å"),
        "flat.xyz": (Atoms("CH", positions=[[0, 0, 0], [1.1, 0, 0]], cell=[[5, 0, 0], [0, 5, 0], [5, 5, 0]], pbc=True), "zero volume"),
    }
    for name, (atoms, message) in cases.items():
        write(tmp_path / name, atoms, format="extxyz")
        result = subprocess.run(_md_command(ethanol_model, tmp_path / name.replace(".xyz", ""), "--structure", str(tmp_path / name)), capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, (name, result.stderr)
        assert not (tmp_path / name.replace(".xyz", "")).exists()  # nothing was started
    simulate(MDConfig(checkpoint=str(ethanol_model), output=str(tmp_path / "run"), time=0.005), progress=False)
    other = subprocess.run(_md_command(copper_model, tmp_path / "run", "--time", "0.005", "--resume"), capture_output=True, text=True)
    assert other.returncode == 2 and "not the checkpoint this run started with" in other.stderr and other.stderr.count("\n") == 1
    wrong = subprocess.run(
        _md_command(copper_model, tmp_path / "cu_on_ethanol", "--structure", "rmd17/ethanol"), capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "this model was trained on Z=[29]" in wrong.stderr and wrong.stderr.count("\n") == 1
    again = subprocess.run(_md_command(ethanol_model, tmp_path / "run", "--time", "0.005"), capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a run" in again.stderr  # never overwritten without --resume


@pytest.mark.slow
def test_md_compare_trains_both_arms_runs_the_protocol_and_reports(tmp_path):
    train_config = {"data": ETHANOL, "model": {**MODEL, "freecg": {"groups": 2}}, "optim": {**OPTIM, "max_epochs": 1}, "accelerator": "cpu"}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(train_config))
    plan = {
        "output": str(tmp_path / "cmp"),
        "seeds": [1, 2],
        "md": {"timestep": 0.5, "time": 0.02, "save_every": 5, "log_every": 5},
        "systems": [
            {"name": "ethanol-nvt", "md": {"ensemble": "langevin", "temperature": 300},
             "models": {"host": {"train": str(tmp_path / "tiny.yaml"), "overrides": ["model.freecg=null"]},
                        "host + FreeCG": {"train": str(tmp_path / "tiny.yaml")}}},
            {"name": "ethanol-nve", "md": {"ensemble": "nve"},
             "models": {"host": {"train": str(tmp_path / "tiny.yaml"), "overrides": ["model.freecg=null"]},
                        "host + FreeCG": {"train": str(tmp_path / "tiny.yaml")}}},
        ],
    }  # fmt: skip
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    result = subprocess.run([str(FREECG), "md-compare", "--config", str(tmp_path / "plan.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "cmp" / "models").iterdir())) == 2  # two trainings shared by both systems
    report = json.loads((tmp_path / "cmp" / "md_comparison.json").read_text())
    rows = {(r["system"], r["arm"]): r for r in report["rows"]}
    assert set(rows) == {(s, a) for s in ("ethanol-nvt", "ethanol-nve") for a in ("host", "host + FreeCG")}
    assert all(r["seeds"] == 2 and r["ns_per_day"]["mean"] > 0 for r in rows.values())
    assert "drift_meV_atom_ps" in rows["ethanol-nve", "host"] and "temperature_K" in rows["ethanol-nvt", "host"]
    assert rows["ethanol-nvt", "host + FreeCG"]["cost"] > 0
    text = (tmp_path / "cmp" / "md_comparison.md").read_text()
    assert "| host + FreeCG | 2 |" in text and (tmp_path / "cmp" / "md_comparison.png").stat().st_size > 0
    seeds = [read(tmp_path / "cmp" / "ethanol-nvt" / "host" / f"seed_{s}" / "trajectory.extxyz", 1).get_momenta() for s in (1, 2)]
    assert not np.allclose(*seeds)  # each seed draws its own velocities
    rerun = subprocess.run([str(FREECG), "md-compare", "--config", str(tmp_path / "plan.yaml")], capture_output=True, text=True)
    assert rerun.returncode == 0 and "training" not in rerun.stdout and "->" not in rerun.stdout  # everything finished is kept


def _rattled(frame, count, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        atoms = frame.copy()
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        frames.append(atoms)
    return frames


@pytest.mark.slow
def test_torchsim_model_matches_the_ase_calculator(ethanol_model, copper_model):
    """The batched TorchSim model gives, system by system, the ASE calculator's energies, forces and
    stress (molecules; periodic cells)."""
    import torch
    import torch_sim as ts

    from freecg_plugin.integrations import FreeCGCalculator
    from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel
    from freecg_plugin.md import load_structure

    for checkpoint, stress in ((ethanol_model, False), (copper_model, True)):
        calculator = FreeCGCalculator(str(checkpoint))
        frames = _rattled(load_structure(None, 0, calculator.config.data), 3, seed=4)
        model = FreeCGTorchSimModel(str(checkpoint), compute_stress=stress)
        state = ts.initialize_state(frames, torch.device("cpu"), torch.float64)
        out = model(state)
        assert out["energy"].shape == (3,) and out["forces"].shape == (state.n_atoms, 3)
        for k, atoms in enumerate(frames):
            atoms.calc = calculator
            mine = state.system_idx == k
            assert out["energy"][k].item() == pytest.approx(atoms.get_potential_energy(), rel=1e-12, abs=1e-10)
            np.testing.assert_allclose(out["forces"][mine].numpy(), atoms.get_forces(), rtol=1e-9, atol=1e-10)
            if stress:
                np.testing.assert_allclose(out["stress"][k].numpy(), atoms.get_stress(voigt=False), rtol=1e-9, atol=1e-12)


def test_torchsim_batched_nve_conserves_energy_per_replica(ethanol_model):
    """Four replicas integrated at once by TorchSim's velocity Verlet: each conserves its own total
    energy, and they are independent (different momenta, different paths)."""
    import torch
    import torch_sim as ts
    from helpers.torchsim_nve import nve_totals

    from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel
    from freecg_plugin.md import load_structure

    model = FreeCGTorchSimModel(str(ethanol_model))
    atoms = load_structure(None, 0, model.config.data)
    state = ts.initialize_state([atoms] * 4, torch.device("cpu"), torch.float64)
    totals, kinetic = nve_totals(model, state, steps=200, temperature_K=100.0, timestep_ps=0.00025, seed=7)  # [steps, replicas]
    drift = np.abs(totals - totals[0]).max(axis=0)
    assert (drift < 0.01 * kinetic).all(), (drift, kinetic)  # against the last step's kinetic energy
    assert np.ptp(totals[0]) > 1e-4  # different momenta per replica
    bad = atoms.copy()
    bad.numbers[0] = 17
    with pytest.raises(ValueError, match="unknown elements"):
        model(ts.initialize_state([bad], torch.device("cpu"), torch.float64))


@pytest.mark.slow
def test_torchsim_own_conformance_check_passes(copper_model):
    """TorchSim's ``validate_model_outputs`` (its systems are Si, Mg and Fe cells: each atom is
    made copper, the model's one element, by the validator's ``state_modifier``)."""
    import torch
    from torch_sim.models.interface import validate_model_outputs

    from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel

    def as_copper(state):
        state.atomic_numbers = torch.full_like(state.atomic_numbers, 29)
        return state

    model = FreeCGTorchSimModel(str(copper_model), compute_stress=True)
    validate_model_outputs(model, torch.device("cpu"), torch.float64, state_modifier=as_copper)
