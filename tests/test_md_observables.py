"""Trajectory observables and stability criteria (``freecg_plugin.md``) on cases with known answers."""

import numpy as np
import pytest

from freecg_plugin.md import (
    bond_lengths,
    diffusivity,
    distance_histogram,
    energy_drift,
    first_bond_failure,
    first_rdf_failure,
    histogram_mae,
    mean_squared_displacement,
    molecular_bonds,
    rdf,
    unwrap,
)

WATER = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]))


def test_ideal_gas_rdf_tends_to_one():
    rng = np.random.default_rng(0)
    box = 12.0
    positions = rng.uniform(0, box, size=(40, 300, 3))
    r, g = rdf(positions, np.eye(3) * box, r_max=5.0, bins=50)
    shell = r > 1.5  # small shells hold few pairs: too noisy to compare
    assert abs(g[shell].mean() - 1.0) < 0.02 and np.abs(g[shell] - 1.0).max() < 0.15


@pytest.mark.parametrize("pair", [(8, 1), (8, 8)])
def test_rdf_equals_a_brute_force_count_in_a_triclinic_cell(pair):
    rng = np.random.default_rng(1)
    cell = np.array([[7.0, 0.0, 0.0], [1.5, 6.5, 0.0], [0.8, 1.1, 7.5]])
    numbers = np.array([8, 1, 1, 8, 1, 1, 8, 1])
    positions = rng.uniform(0, 1, size=(6, 8, 3)) @ cell
    r_max, bins = 4.0, 8
    _, g = rdf(positions, cell, numbers, pair, r_max, bins)
    shifts = np.array([[a, b, c] for a in range(-2, 3) for b in range(-2, 3) for c in range(-2, 3)]) @ cell
    counts = np.zeros(bins)
    for frame in positions:
        for i in np.flatnonzero(numbers == pair[0]):
            for j in np.flatnonzero(numbers == pair[1]):
                d = np.linalg.norm(frame[j] + shifts - frame[i], axis=1)
                d = d[(d < r_max) & (d > 1e-9)]  # an atom is not its own neighbour (its images are)
                counts += np.histogram(d, bins=bins, range=(0, r_max))[0]
    edges = np.linspace(0, r_max, bins + 1)
    partners = (numbers == pair[1]).sum() - (pair[0] == pair[1])
    shells = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    expected = counts / (len(positions) * (numbers == pair[0]).sum() * partners / abs(np.linalg.det(cell)) * shells)
    assert counts.sum() > 20 and np.allclose(g, expected)


def test_distance_histogram_is_a_density_and_its_error_vanishes_only_on_itself():
    positions = np.random.default_rng(2).normal(size=(5, 9, 3))
    r, h = distance_histogram(positions, r_max=20.0, bins=400)
    assert np.isclose(h.sum() * (r[1] - r[0]), 1.0)  # every distance is below 20 Å here
    assert histogram_mae(h, h, 20.0) == 0
    _, stretched = distance_histogram(positions * 1.3, r_max=20.0, bins=400)
    assert histogram_mae(stretched, h, 20.0) > 0.1


def test_bond_criterion_flags_the_first_broken_frame_and_passes_vibrations():
    numbers, frame = WATER
    bonds = molecular_bonds(numbers, frame)
    assert bonds.tolist() == [[0, 1], [0, 2]]
    reference = bond_lengths(frame, bonds)[0]
    rng = np.random.default_rng(3)
    intact = frame[None] + rng.normal(scale=0.03, size=(20, 3, 3))
    assert first_bond_failure(intact, bonds, reference) is None
    broken = intact.copy()
    broken[7:, 2] += np.array([0.0, 0.7, 0.0])  # one hydrogen leaves from frame 7 on
    assert first_bond_failure(broken, bonds, reference) == 7
    with pytest.raises(ValueError, match="no bonds"):
        molecular_bonds([1, 1], [[0, 0, 0], [0, 0, 5.0]])


def test_rdf_criterion_flags_the_window_where_the_structure_melts():
    rng = np.random.default_rng(4)
    box = 10.0
    lattice = np.stack(np.meshgrid(*[np.arange(5) * 2.0] * 3, indexing="ij"), -1).reshape(-1, 3)
    numbers = np.ones(len(lattice), dtype=int)
    crystal = lattice[None] + rng.normal(scale=0.05, size=(40, len(lattice), 3))
    _, reference = rdf(crystal[:10], np.eye(3) * box, r_max=4.0, bins=80)
    run = crystal.copy()
    run[24:] = rng.uniform(0, box, size=(16, len(lattice), 3))  # a gas from frame 24 on
    kwargs = dict(numbers=numbers, reference=[reference], pairs=[None], window=8, threshold=1.0, r_max=4.0, bins=80)
    assert first_rdf_failure(crystal, np.eye(3) * box, **kwargs) is None
    assert first_rdf_failure(run, np.eye(3) * box, **kwargs) == 20  # the first window reaching into the gas


def test_msd_and_diffusivity_of_a_random_walk():
    rng = np.random.default_rng(5)
    d_true, dt, steps, atoms, box = 0.5, 0.01, 400, 200, 8.0  # Å^2/ps, ps
    walk = np.cumsum(rng.normal(scale=np.sqrt(2 * d_true * dt), size=(steps, atoms, 3)), axis=0)
    walk -= walk.mean(axis=1, keepdims=True)  # no centre-of-mass drift
    wrapped = np.mod(walk, box)
    unwrapped = unwrap(wrapped, np.eye(3) * box)
    assert np.allclose(unwrapped - unwrapped[:1], walk - walk[:1])
    msd = mean_squared_displacement(unwrapped)
    assert np.allclose(msd, np.square(walk - walk[:1]).sum(-1).mean(-1))
    estimate = diffusivity(np.arange(steps) * dt, msd)
    assert abs(estimate.value - d_true) < 0.1 * d_true and estimate.stderr < 0.1 * d_true


def test_msd_removes_the_centre_of_mass_drift():
    positions = np.zeros((5, 4, 3)) + np.arange(5)[:, None, None] * np.array([1.0, 0.0, 0.0])  # all atoms drift together
    assert np.allclose(mean_squared_displacement(positions), 0.0)


def test_energy_drift_recovers_a_linear_drift():
    times = np.linspace(0, 10, 1001)  # ps
    atoms = 21
    noise = np.random.default_rng(6).normal(scale=1e-4, size=times.shape)
    energy = -100.0 + 2e-3 * atoms * times + noise  # eV: 2 meV/atom/ps
    drift = energy_drift(times, energy, atoms)
    assert abs(drift.drift - 2.0) < 0.01 and drift.stderr < 0.01
    assert 0 < drift.fluctuation < 0.01
