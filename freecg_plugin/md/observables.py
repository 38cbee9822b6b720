"""Observables of a trajectory: distance histograms h(r), radial distribution functions g(r),
mean squared displacement and diffusivity, and the drift of the total energy.

Plain numpy on arrays, usable on any trajectory (ours, or frames read with ASE). Positions are
``[T, N, 3]`` in Å, times in ps, energies in eV; a cell is ``[3, 3]`` (rows are lattice vectors)
or ``[T, 3, 3]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "Diffusivity",
    "EnergyDrift",
    "diffusivity",
    "distance_histogram",
    "energy_drift",
    "histogram_mae",
    "mean_squared_displacement",
    "rdf",
    "unwrap",
]


def _frames(positions) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [T, N, 3] (or [N, 3]), got {list(positions.shape)}")
    return positions


def _cells(cell, frames: int) -> np.ndarray:
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape == (3, 3):
        cell = np.broadcast_to(cell, (frames, 3, 3))
    if cell.shape != (frames, 3, 3):
        raise ValueError(f"cell must be [3, 3] or [T, 3, 3] with T = {frames}, got {list(cell.shape)}")
    if np.any(np.abs(np.linalg.det(cell)) < 1e-8):
        raise ValueError("cell with zero volume")
    return cell


def distance_histogram(positions, r_max: float = 10.0, bins: int = 500) -> Tuple[np.ndarray, np.ndarray]:
    """h(r) of a molecule: the distribution of all its interatomic distances (each pair once, no
    periodic images), as a density over ``[0, r_max]`` (it integrates to the share of distances
    below ``r_max``), averaged over the frames.

    Returns:
        bin centres ``[bins]`` and h ``[bins]`` (1/Å).
    """
    positions = _frames(positions)
    i, j = np.triu_indices(positions.shape[1], k=1)
    distances = np.linalg.norm(positions[:, j] - positions[:, i], axis=-1).ravel()
    counts, edges = np.histogram(distances, bins=bins, range=(0.0, r_max))
    width = r_max / bins
    return 0.5 * (edges[1:] + edges[:-1]), counts / (len(distances) * width)


def histogram_mae(model: np.ndarray, reference: np.ndarray, r_max: float) -> float:
    """``mean |model - reference| x r_max``: the MD-stability literature's error of an RDF or h(r)
    sampled on the same bins over ``[0, r_max]`` (Fu et al. 2023)."""
    model, reference = np.asarray(model), np.asarray(reference)
    if model.shape != reference.shape:
        raise ValueError(f"histograms on different bins: {model.shape} and {reference.shape}")
    return float(np.abs(model - reference).mean() * r_max)


def rdf(
    positions,
    cell,
    numbers: Optional[Sequence[int]] = None,
    pair: Optional[Tuple[int, int]] = None,
    r_max: float = 6.0,
    bins: int = 500,
) -> Tuple[np.ndarray, np.ndarray]:
    """g(r) of a periodic system (any cell, fully periodic), averaged over the frames.

    ``g_AB(r) = n_AB(r) / (N_A (N_B - delta_AB) / V * 4 pi r^2 dr)`` with ``n_AB`` the ordered pairs
    (i in A, j in B, j != i, periodic images included) at distance r: an ideal gas gives 1.

    Args:
        positions: ``[T, N, 3]``.
        cell: ``[3, 3]`` or ``[T, 3, 3]``.
        numbers: atomic numbers ``[N]`` (needed with ``pair``).
        pair: ``(Z_A, Z_B)``, e.g. ``(8, 8)`` for O-O; ``None``: all atoms.
        r_max, bins: the histogram's range ``[0, r_max]`` and bin count.

    Returns:
        bin centres ``[bins]`` and g ``[bins]``.
    """
    from vesin import NeighborList

    positions = _frames(positions)
    cells = _cells(cell, positions.shape[0])
    n = positions.shape[1]
    if pair is None:
        in_a = in_b = np.ones(n, dtype=bool)
    else:
        if numbers is None:
            raise ValueError("rdf: a species pair needs the atomic numbers")
        numbers = np.asarray(numbers)
        in_a, in_b = numbers == pair[0], numbers == pair[1]
        if not in_a.any() or not in_b.any():
            raise ValueError(f"rdf: no atoms of element {pair[0] if not in_a.any() else pair[1]}")
    n_a, n_b = int(in_a.sum()), int(in_b.sum()) - (1 if pair is None or pair[0] == pair[1] else 0)
    counts = np.zeros(bins)
    volume = 0.0
    finder = NeighborList(cutoff=r_max, full_list=True)
    for frame, box in zip(positions, cells):
        i, j, d = finder.compute(frame, box, True, quantities="ijd")
        keep = in_a[i] & in_b[j]
        counts += np.histogram(d[keep], bins=bins, range=(0.0, r_max))[0]
        volume += abs(np.linalg.det(box))
    edges = np.linspace(0.0, r_max, bins + 1)
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    frames = positions.shape[0]
    density = n_b / (volume / frames)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (frames * n_a * density * shells)


def unwrap(positions, cell) -> np.ndarray:
    """Continuous trajectories from wrapped positions: each step moves an atom by the minimum image
    of its displacement (valid when no atom moves half a cell between saved frames)."""
    positions = _frames(positions)
    cells = _cells(cell, positions.shape[0])
    steps = np.diff(positions, axis=0)
    fractional = np.einsum("tnk,tkl->tnl", steps, np.linalg.inv(cells[1:]))
    steps = np.einsum("tnk,tkl->tnl", fractional - np.round(fractional), cells[1:])
    return np.concatenate([positions[:1], positions[:1] + np.cumsum(steps, axis=0)])


def mean_squared_displacement(positions, masses: Optional[Sequence[float]] = None, atoms=None) -> np.ndarray:
    """``MSD(t) = mean_i |r_i(t) - r_i(0)|^2`` over ``atoms`` (indices or a mask; default all),
    after removing the drift of the centre of mass (of all atoms, weighted by ``masses``).
    ``positions`` must be unwrapped (:func:`unwrap`). Returns ``[T]`` in Å^2."""
    positions = _frames(positions)
    weights = np.ones(positions.shape[1]) if masses is None else np.asarray(masses, dtype=np.float64)
    centre = np.einsum("tnk,n->tk", positions, weights) / weights.sum()
    relative = positions - centre[:, None, :]
    displacement = relative - relative[:1]
    if atoms is not None:
        displacement = displacement[:, atoms]
    return np.square(displacement).sum(-1).mean(-1)


@dataclass
class Diffusivity:
    """``D`` and its standard error in Å^2/ps (x 1e-4 for cm^2/s), from ``MSD = 6 D t + c``."""

    value: float
    stderr: float

    @property
    def cm2_per_s(self) -> Tuple[float, float]:
        return self.value * 1e-4, self.stderr * 1e-4


def _linear_fit(x: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Least-squares slope and its standard error."""
    if len(x) < 3:
        raise ValueError(f"a linear fit needs at least 3 points, got {len(x)}")
    a = np.stack([x, np.ones_like(x)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
    residual = y - (slope * x + intercept)
    variance = residual @ residual / (len(x) - 2)
    return float(slope), float(np.sqrt(variance / np.sum((x - x.mean()) ** 2)))


def diffusivity(times, msd, skip: float = 0.2) -> Diffusivity:
    """Diffusion coefficient from the MSD's slope, fitted after discarding the first ``skip`` share
    of the run (the ballistic start)."""
    times, msd = np.asarray(times, dtype=np.float64), np.asarray(msd, dtype=np.float64)
    start = int(len(times) * skip)
    slope, error = _linear_fit(times[start:], msd[start:])
    return Diffusivity(slope / 6.0, error / 6.0)


@dataclass
class EnergyDrift:
    """Linear drift of the total energy (meV/atom/ps, with its standard error) and its
    fluctuation around the fit (meV/atom)."""

    drift: float
    stderr: float
    fluctuation: float


def energy_drift(times, total_energy, atoms: int) -> EnergyDrift:
    """The NVE quality of a run: ``times`` in ps, ``total_energy`` in eV, per atom in meV."""
    times = np.asarray(times, dtype=np.float64)
    energy = 1000.0 * np.asarray(total_energy, dtype=np.float64) / atoms
    slope, error = _linear_fit(times, energy)
    residual = energy - slope * times
    return EnergyDrift(slope, error, float(np.std(residual - residual.mean())))
