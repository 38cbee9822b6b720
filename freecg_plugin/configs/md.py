"""What one ``freecg md`` simulation runs: :class:`MDConfig`, checked when built (one-line errors,
before any step)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

from ..data.units import ENERGY_UNITS

__all__ = ["ENSEMBLES", "MDConfig"]

ENSEMBLES = ("nve", "langevin", "nose-hoover", "npt")
"""``nve``: velocity Verlet; ``langevin``: NVT, ASE's Langevin; ``nose-hoover``: NVT, a Nosé-Hoover
chain; ``npt``: isotropic MTK barostat with a Nosé-Hoover chain (fully periodic cells only)."""


@dataclass
class MDConfig:
    """One molecular-dynamics run of a trained model.

    Attributes:
        checkpoint: a ``freecg train`` checkpoint (``OUTPUT/checkpoints/best.ckpt``) or a compiled
            nequip-framework model (``.nequip.pt2``; see :mod:`freecg_plugin.integrations.nequip`).
        output: folder for ``trajectory.extxyz``, ``log.csv``, ``state.npz``, ``run.json``.
        structure: starting structure: any file ASE reads, or a dataset name (``freecg data list``);
            ``None``: the dataset the checkpoint was trained on.
        frame: which frame of ``structure`` (``-1``: the last).
        ensemble: one of :data:`ENSEMBLES`.
        temperature: K, for the initial velocities (Maxwell-Boltzmann) and the thermostat.
        timestep: fs.
        time: simulated time in ps (``steps = time / timestep``).
        friction: Langevin friction in 1/fs.
        tdamp: Nosé-Hoover thermostat time constant in fs (``None``: 100 time steps).
        pressure: NPT pressure in bar.
        pdamp: NPT barostat time constant in fs (``None``: 1000 time steps).
        seed: initial velocities and Langevin noise.
        dtype: ``float64`` or ``float32`` for the model.
        device: ``cpu``, ``cuda``...
        log_every: steps between rows of ``log.csv``.
        save_every: steps between trajectory frames; the resumable state is saved with each frame,
            so an interruption loses at most this many steps.
        stop_unstable: stop at the first unstable frame (bond or RDF criterion), keeping everything
            written up to it; ``False``: record it and go on.
        bond_tolerance: Å, molecules: a bond deviating more than this from its reference length is
            broken (Fu et al. 2023: 0.5).
        rdf_threshold: periodic systems: unstable when the RDF error of a 1 ps window exceeds this
            (water 3.0 over O-O, O-H, H-H; LiPS 1.0, all atoms); ``None``: no RDF check.
        rdf_pairs: element pairs such as ``["O-O", "O-H", "H-H"]``; ``None``: all atoms.
        rdf_window: ps per RDF window (windows slide by half of it).
        reference: frames for the reference bond lengths / RDF: a file or dataset name; ``None``:
            the checkpoint's training data when it holds the same atoms, else the first frame.
        energy_unit: the energy unit of a compiled nequip model (``eV``, ``kcal/mol``...: nequip
            models do not store it); ``None`` for ``freecg train`` checkpoints, which store theirs.
    """

    checkpoint: str
    output: str
    structure: Optional[str] = None
    frame: int = 0
    ensemble: str = "langevin"
    temperature: float = 300.0
    timestep: float = 0.5
    time: float = 10.0
    friction: float = 0.01
    tdamp: Optional[float] = None
    pressure: float = 1.0
    pdamp: Optional[float] = None
    seed: int = 0
    dtype: str = "float64"
    device: str = "cpu"
    log_every: int = 10
    save_every: int = 20
    stop_unstable: bool = True
    bond_tolerance: float = 0.5
    rdf_threshold: Optional[float] = None
    rdf_pairs: Optional[List[str]] = None
    rdf_window: float = 1.0
    reference: Optional[str] = None
    energy_unit: Optional[str] = None

    def __post_init__(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"md: unknown ensemble {self.ensemble!r}; one of {list(ENSEMBLES)}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"md: dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("timestep", "time", "friction", "bond_tolerance", "rdf_window"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"md: {name} must be positive, got {getattr(self, name)}")
        if not float(self.temperature) >= 0:
            raise ValueError(f"md: temperature must be >= 0 K, got {self.temperature}")
        for name in ("log_every", "save_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"md: {name} must be a positive number of steps, got {getattr(self, name)}")
        if self.steps < 1:
            raise ValueError(f"md: {self.time} ps at {self.timestep} fs is less than one step")
        for name in ("tdamp", "pdamp", "rdf_threshold"):
            value = getattr(self, name)
            if value is not None and not float(value) > 0:
                raise ValueError(f"md: {name} must be positive, got {value}")
        if self.energy_unit is not None and self.energy_unit not in ENERGY_UNITS:
            raise ValueError(f"md: unknown energy unit {self.energy_unit!r}; one of {sorted(ENERGY_UNITS)}")
        for pair in self.rdf_pairs or []:
            if len(str(pair).split("-")) != 2:
                raise ValueError(f"md: rdf pair {pair!r} is not ELEMENT-ELEMENT (e.g. O-H)")

    @property
    def steps(self) -> int:
        """Time steps of the whole run."""
        return int(round(1000.0 * float(self.time) / float(self.timestep)))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)
