"""The metatomic export (``freecg export --format metatomic``) in metatomic's real engines: the ASE
calculator of ``metatomic-ase`` gives the energy, forces and stress of ``FreeCGCalculator`` on a
molecule, a water box and a slab (float64) for PaiNN and SO3net + FreeCG; per-atom energies add up
to the total; TorchSim (``metatomic-torchsim``) and i-PI (server and its metatomic driver over a
UNIX socket) run NVE that conserves energy; hosts that do not script are refused in one line."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("metatomic.torch")
pytest.importorskip("schnetpack")

from helpers.tiny import PAINN, SO3NET, train_tiny  # noqa: E402
from helpers.torchsim_nve import nve_totals  # noqa: E402
from metatomic_ase import MetatomicCalculator  # noqa: E402

from freecg_plugin.integrations import FreeCGCalculator  # noqa: E402
from freecg_plugin.integrations.metatomic import export_metatomic  # noqa: E402
from freecg_plugin.md import load_structure  # noqa: E402

FREECG = Path(sys.executable).with_name("freecg")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", params=[PAINN, SO3NET], ids=["painn", "so3net"])
def water_model(request, tmp_path_factory):
    """A tiny model trained on the water box (eV, periodic), its checkpoint and metatomic file."""
    out = tmp_path_factory.mktemp(request.param["host"])
    checkpoint = train_tiny(out, "water/deepmd64", frames=4, host=request.param, freecg=request.param["freecg"])
    return checkpoint, export_metatomic(checkpoint, out / "model.pt")


def structures():
    """A water box (bulk: stress), the same atoms as a slab (periodic in x and y) and a cluster of
    water molecules cut from it (no cell)."""
    box = load_structure("water/deepmd64", 1, None)
    slab = box.copy()
    slab.cell[2] *= 2.0
    slab.pbc = (True, True, False)
    cluster = box[: 3 * 6].copy()  # six molecules (O H H ...)
    cluster.set_cell(None)
    cluster.pbc = False
    return {"box": box, "slab": slab, "molecules": cluster}


def assert_same_energy(exported: Path, checkpoint: Path, structure: str) -> None:
    atoms = structures()[structure]
    atoms.calc = MetatomicCalculator(str(exported), device="cpu")
    reference = atoms.copy()
    reference.calc = FreeCGCalculator(str(checkpoint))
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-6)


def test_metatomic_ase_gives_the_calculators_energy_forces_and_stress(water_model):
    checkpoint, exported = water_model
    ours = FreeCGCalculator(str(checkpoint))
    theirs = MetatomicCalculator(str(exported), device="cpu", check_consistency=True)
    for name, atoms in structures().items():
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = ours, theirs
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-6), name
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-6, err_msg=name)
        if name == "box":
            np.testing.assert_allclose(b.get_stress(), a.get_stress(), atol=1e-8)
            assert np.abs(a.get_stress()).max() > 1e-6  # not trivially zero


def test_per_atom_energies_add_up_to_the_total_and_selected_atoms_pick_them(water_model):
    from metatensor.torch import Labels
    from metatomic.torch import ModelOutput

    _, exported = water_model
    box = structures()["box"]
    box.calc = MetatomicCalculator(str(exported), device="cpu", check_consistency=True)
    atomic = box.get_potential_energies()
    assert atomic.shape == (len(box),) and atomic.sum() == pytest.approx(box.get_potential_energy(), abs=1e-8)
    assert np.ptp(atomic) > 0  # O and H differ
    some = Labels(["system", "atom"], torch.tensor([[0, 0], [0, 5], [0, 17]], dtype=torch.int32))
    output = ModelOutput(quantity="energy", unit="eV", sample_kind="system")
    picked = box.calc.run_model(box, {"energy": output}, selected_atoms=some)["energy"].block().values
    assert picked.item() == pytest.approx(atomic[[0, 5, 17]].sum(), abs=1e-10)


def test_torchsim_runs_the_exported_model_in_nve(water_model):
    import torch_sim as ts
    from metatomic_torchsim import MetatomicModel

    _, exported = water_model
    model = MetatomicModel(str(exported), device="cpu")
    state = ts.initialize_state([structures()["box"]], torch.device("cpu"), torch.float64)
    totals, kinetic = nve_totals(model, state, steps=30, temperature_K=300.0, timestep_ps=0.00025, seed=3)
    assert np.isfinite(totals).all() and np.ptp(totals) < 0.01 * float(kinetic[0])


IPI_INPUT = """<simulation verbosity='low' safe_stride='1000'>
  <output prefix='nve'>
    <properties stride='1' filename='out'> [ step, conserved{{electronvolt}}, potential{{electronvolt}}, kinetic_md{{electronvolt}} ] </properties>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>31415</seed></prng>
  <ffsocket name='freecg' mode='unix' pbc='true'><address>{address}</address><latency>1e-4</latency></ffsocket>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz' units='angstrom'> init.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces><force forcefield='freecg'/></forces>
    <ensemble><temperature units='kelvin'> 300 </temperature></ensemble>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'> 0.25 </timestep></dynamics></motion>
  </system>
</simulation>
"""


def write_ipi_xyz(atoms, path: Path) -> None:
    """i-PI's xyz: the cell as a, b, c, alpha, beta, gamma in the comment line."""
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    lines = [str(len(atoms)), f"# CELL(abcABC): {a} {b} {c} {alpha} {beta} {gamma} cell{{angstrom}} positions{{angstrom}}"]
    lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_ipi_runs_the_exported_model_through_its_metatomic_driver(water_model, tmp_path):
    checkpoint, exported = water_model
    box = structures()["box"]
    write_ipi_xyz(box, tmp_path / "init.xyz")
    address = f"freecg{os.getpid()}{tmp_path.name[-6:]}"
    (tmp_path / "input.xml").write_text(IPI_INPUT.format(steps=30, address=address))
    server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"/tmp/ipi_{address}").exists():
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()[-3000:]
            time.sleep(0.2)
        driver = subprocess.run(
            [str(BIN / "i-pi-py_driver"), "-u", "-a", address, "-m", "metatomic", "-o", f"template=init.xyz,model={exported}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert server.wait(timeout=120) == 0, server.stdout.read()[-3000:]
    finally:
        server.kill()
    assert driver.returncode == 0, driver.stderr[-3000:]
    rows = np.loadtxt(tmp_path / "nve.out", ndmin=2)  # step, conserved, potential, kinetic (eV)
    assert len(rows) == 31
    box.calc = FreeCGCalculator(str(checkpoint))
    assert rows[0, 2] == pytest.approx(box.get_potential_energy(), abs=1e-4)  # the start structure (i-PI prints 4 decimals)
    drift = np.ptp(rows[:, 1])
    assert drift < 0.01 * rows[:, 3].mean(), (drift, rows[:, 3].mean())


def test_hosts_that_do_not_script_are_refused_in_one_line_and_nothing_is_written(tmp_path):
    pytest.importorskip("torch_geometric")
    from freecg_plugin.configs import TrainConfig
    from freecg_plugin.training import train

    config = TrainConfig.from_dict({
        "data": {"dataset": "rmd17/ethanol", "n_train": 4, "n_val": 2, "n_test": 2},
        "model": {"host": "visnet", "args": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 8, "num_rbf": 4}, "cutoff": 4.0, "freecg": {"groups": 2}},
        "optim": {"batch_size": 2, "max_epochs": 1, "warmup_steps": 1}, "output": str(tmp_path / "visnet"), "accelerator": "cpu",
    })  # fmt: skip
    train(config)
    checkpoint = tmp_path / "visnet" / "checkpoints" / "best.ckpt"
    done = subprocess.run(
        [str(FREECG), "export", str(checkpoint), "--format", "metatomic", "--output", str(tmp_path / "visnet.pt")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "cannot be exported for metatomic" in done.stderr and "model.freecg" in done.stderr
    assert not list(tmp_path.glob("visnet.pt*"))


def test_the_cli_exports_a_model_file_as_metatomic(water_model, tmp_path):
    checkpoint, _ = water_model
    safe = tmp_path / "model.freecg"
    assert subprocess.run([str(FREECG), "export", str(checkpoint), "--output", str(safe)], capture_output=True).returncode == 0
    done = subprocess.run(
        [str(FREECG), "export", str(safe), "--format", "metatomic", "--output", str(tmp_path / "m.pt")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_energy(tmp_path / "m.pt", checkpoint, "molecules")


AFTER_PYG = """
import sys
import torch_geometric.nn  # PyG 2.8 replaces torch.index_select by a wrapper TorchScript cannot compile
from freecg_plugin.integrations.metatomic import export_metatomic
export_metatomic(sys.argv[1], sys.argv[2])
"""


def test_the_export_works_with_pyg_loaded_first(water_model, tmp_path):
    pytest.importorskip("torch_geometric")
    checkpoint, _ = water_model
    done = subprocess.run([sys.executable, "-c", AFTER_PYG, str(checkpoint), str(tmp_path / "m.pt")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_energy(tmp_path / "m.pt", checkpoint, "box")
