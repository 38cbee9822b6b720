"""OpenMM through openmmml: ``MLPotential("freecg", model=...)`` from the package's entry point,
energies and forces from an OpenMM ``Context`` equal to the ASE calculator's, and a short Langevin
run that stays finite near its temperature."""

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmml")
pytest.importorskip("lightning")

from helpers.tiny import train_tiny  # noqa: E402
from openmm import app, unit  # noqa: E402
from openmmml import MLPotential  # noqa: E402

from freecg_plugin.checkpoint import export_model  # noqa: E402
from freecg_plugin.integrations import FreeCGCalculator  # noqa: E402
from freecg_plugin.md import load_structure  # noqa: E402

KJ_PER_MOL_PER_EV = 96.48533212331


@pytest.fixture(scope="module")
def ethanol_model(tmp_path_factory):
    """Trained enough (64 frames, 60 epochs, ~8 s) to hold ethanol together at 300 K: a model of
    a few epochs has no repulsion, and its molecule collapses (measured: seeds 1-5 of this one
    keep every pair of atoms over 0.79 Å for 1 ps; 16 frames x 2 epochs fell to 0.05 Å)."""
    out = tmp_path_factory.mktemp("openmm")
    return export_model(train_tiny(out, "rmd17/ethanol", frames=64, epochs=60, lr=3e-3), out / "ethanol.freecg")


def topology_of(atoms) -> app.Topology:
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for k, z in enumerate(atoms.numbers):
        topology.addAtom(f"A{k}", app.Element.getByAtomicNumber(int(z)), residue)
    return topology


def test_openmm_energies_and_forces_equal_the_ase_calculator(ethanol_model):
    atoms = load_structure("rmd17/ethanol", 5, None)
    system = MLPotential("freecg", model=str(ethanol_model)).createSystem(topology_of(atoms))
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)  # Å -> nm
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    atoms.calc = FreeCGCalculator(str(ethanol_model))
    assert energy / KJ_PER_MOL_PER_EV == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(forces / KJ_PER_MOL_PER_EV / 10.0, atoms.get_forces(), atol=1e-6)


@pytest.mark.slow
def test_a_short_langevin_run_in_openmm_stays_finite_near_its_temperature(ethanol_model):
    atoms = load_structure("rmd17/ethanol", 0, None)
    system = MLPotential("freecg", model=str(ethanol_model)).createSystem(topology_of(atoms))
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 10 / unit.picosecond, 0.5 * unit.femtosecond)
    integrator.setRandomNumberSeed(7)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 7)
    dof = 3 * len(atoms) - 3  # the centre-of-mass motion is removed
    temperatures, closest = [], []
    for _ in range(200):
        integrator.step(10)
        state = context.getState(getEnergy=True, getPositions=True)
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        temperatures.append(2 * kinetic / (dof * unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)))
        assert np.isfinite(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        assert np.isfinite(positions).all()
        closest.append(min(np.linalg.norm(positions[i] - positions[j]) for i in range(len(atoms)) for j in range(i)))
    assert abs(np.mean(temperatures[50:]) / 300 - 1) < 0.25, temperatures
    assert min(closest) > 0.6, min(closest)  # a molecule, not a collapse
    assert torch.get_default_dtype() == torch.float32
