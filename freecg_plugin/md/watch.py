"""The stability criteria of a ``freecg md`` run, applied as it goes (:class:`StabilityWatch`):
bond lengths (molecules), the windowed RDF against the reference frames (cells, when a threshold
is set), finite energies and forces, overlapping atoms."""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ..configs.md import MDConfig
from .observables import histogram_mae, rdf
from .stability import bond_lengths, molecular_bonds
from .start import closest_pair

__all__ = ["StabilityWatch"]


class StabilityWatch:
    """The stability criteria applied as the run goes: bond lengths (molecules), windowed RDF
    against the reference (periodic, when a threshold is set), finite energies, overlaps.

    A check returns ``(status, reason, time)`` when the run is unstable from ``time`` (ps; for
    the RDF, the first frame of the failing window), else ``None``.
    """

    def __init__(self, config: MDConfig, start, reference: List) -> None:
        self.config = config
        self.periodic = bool(start.pbc.any())
        self.bonds = self.bond_reference = None
        self.rdf_reference: List[np.ndarray] = []
        self.pairs: List[Optional[Tuple[int, int]]] = []
        same = [a for a in reference if len(a) == len(start) and (a.numbers == start.numbers).all()]
        if not self.periodic:
            self.bonds = molecular_bonds(start.numbers, start.positions)
            frames = same or [start]
            self.bond_reference = bond_lengths(np.stack([a.positions for a in frames]), self.bonds).mean(axis=0)
        elif config.rdf_threshold is not None:
            from ase.data import atomic_numbers

            if not same:
                raise ValueError("md: an RDF check needs reference frames of the same atoms (set `reference`)")
            self.pairs = [None]
            if config.rdf_pairs:
                try:
                    self.pairs = [tuple(atomic_numbers[s] for s in p.split("-")) for p in config.rdf_pairs]
                except KeyError as err:
                    raise ValueError(f"md: unknown element {err} in rdf_pairs {config.rdf_pairs}") from None
            positions = np.stack([a.positions for a in same])
            cells = np.stack([np.asarray(a.cell) for a in same])
            self.rdf_reference = [rdf(positions, cells, start.numbers, pair)[1] for pair in self.pairs]
        frame_ps = config.save_every * config.timestep / 1000.0
        self.window = max(int(round(config.rdf_window / frame_ps)), 2)
        self.frames: List[Tuple[float, np.ndarray, np.ndarray]] = []  # the last window of saved frames
        self.since_check = 0

    def bond_deviation(self, atoms) -> float:
        """The largest ``|bond length - reference|`` (Å) of a molecule; NaN for cells."""
        if self.bonds is None:
            return float("nan")
        return float(np.abs(bond_lengths(atoms.positions, self.bonds)[0] - self.bond_reference).max())

    def on_log(self, atoms, time_ps: float, energy: float, deviation: float) -> Optional[Tuple[str, str, float]]:
        if not np.isfinite(energy) or not np.isfinite(atoms.get_forces()).all():
            return "exploded", "non-finite energy or forces", time_ps
        if deviation > self.config.bond_tolerance:
            return "unstable", f"a bond deviates {deviation:.2f} Å from its reference (limit {self.config.bond_tolerance} Å)", time_ps
        overlap = closest_pair(atoms)
        if overlap is not None:
            return "exploded", f"atoms {overlap[0]} and {overlap[1]} collapsed to {overlap[2]:.2f} Å", time_ps
        return None

    def on_frame(self, atoms, time_ps: float) -> Optional[Tuple[str, str, float]]:
        """Add a saved frame to the RDF window; check the window every half window."""
        if not self.rdf_reference:
            return None
        self.frames = (self.frames + [(time_ps, atoms.positions.copy(), np.asarray(atoms.cell).copy())])[-self.window :]
        self.since_check += 1
        if len(self.frames) < self.window or self.since_check < max(self.window // 2, 1):
            return None
        self.since_check = 0
        positions = np.stack([p for _, p, _ in self.frames])
        cells = np.stack([c for _, _, c in self.frames])
        errors = [
            histogram_mae(rdf(positions, cells, atoms.numbers, pair)[1], ref, 6.0) for pair, ref in zip(self.pairs, self.rdf_reference)
        ]
        if max(errors) > self.config.rdf_threshold:
            reason = f"RDF error {max(errors):.2f} over {self.config.rdf_window} ps (limit {self.config.rdf_threshold})"
            return "unstable", reason, self.frames[0][0]
        return None
