"""``freecg md``: a trained model run in ASE's integrators, written as it goes, resumable, and
stopped when the simulation stops being physical.

An output folder holds

* ``run.json``: the config, the checkpoint's SHA-256, the starting structure's size and elements;
* ``trajectory.extxyz``: a frame every ``save_every`` steps (wrapped positions, momenta, energy,
  forces; ``step`` and ``time_ps`` in the comment line);
* ``log.csv``: every ``log_every`` steps: time, potential / kinetic / total energy (eV),
  temperature (K), the chain integrators' conserved energy, pressure (bar) and volume for cells,
  the largest bond deviation (Å) for molecules;
* ``state.npz``: with each saved frame, what it takes to continue (positions, momenta, cell,
  thermostat, noise generator, step, how much of the trajectory and log belong to it), written
  to a temporary file and renamed, so it is always whole;
* ``summary.json``: how the run ended (completed / unstable / exploded), stable time, speed.

``--resume`` cuts the trajectory and the log back to the last saved state (what a kill -9 may
have left half-written) and continues from it exactly.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..data.registry import sha256_of
from ..training.report import write_atomic
from .config import MDConfig
from .integrators import build_dynamics, integrator_state, restore_integrator_state, wrap_positions
from .observables import histogram_mae, rdf
from .potentials import load_potential
from .stability import bond_lengths, molecular_bonds

__all__ = ["MDRun", "OVERLAP_DISTANCE", "check_start", "closest_pair", "load_structure", "simulate", "stored_config"]

OVERLAP_DISTANCE = 0.5
"""Å: two atoms closer than this overlap (a bad start, or a collapsed simulation)."""

FILES = ("run.json", "trajectory.extxyz", "log.csv", "state.npz", "summary.json")


@dataclass
class MDRun:
    """How a run ended.

    Attributes:
        status: ``completed``, ``unstable`` (bond or RDF criterion), or ``exploded`` (non-finite
            energy or forces, atoms overlapping).
        steps: steps simulated.
        stable_time: ps simulated before the first unstable frame (the whole run when none).
        reason: what made it stop (empty when completed).
        wall_seconds: time spent in the integration loop (all sessions of a resumed run).
        steps_per_second, ns_per_day: speed of the loop.
    """

    status: str
    steps: int
    stable_time: float
    reason: str
    wall_seconds: float
    steps_per_second: float
    ns_per_day: float


def _dataset_frames(name: str, split: Any = "01"):
    """``AtomsData`` of a registry dataset's train pool."""
    from ..training.config import DataConfig
    from ..training.data import load_pool

    return load_pool(DataConfig(dataset=name, split=split, n_val=1))


def _to_atoms(structure):
    from ase import Atoms

    cell = None if structure.cell is None else structure.cell.detach().double().numpy()
    return Atoms(numbers=structure.numbers.tolist(), positions=structure.positions.detach().double().numpy(), cell=cell, pbc=structure.axes)


def _frames(source: Optional[str], training_data) -> List:
    """Frames of ``source`` (a file ASE reads or a dataset name) or, for ``None``, of the
    checkpoint's training data, as ``ase.Atoms``."""
    if source is None:
        from ..training.data import load_pool

        return [_to_atoms(s) for s in load_pool(training_data).structures]
    from ..data import registry

    if not Path(source).exists() and source in {d.name for d in registry.datasets()}:
        return [_to_atoms(s) for s in _dataset_frames(source).structures]
    import ase.io

    try:
        frames = ase.io.read(source, ":")
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: no such file or dataset (see `freecg data list`)") from None
    except Exception as err:
        raise ValueError(f"{source}: ASE cannot read it ({str(err).splitlines()[0][:160] if str(err) else type(err).__name__})") from None
    return frames if isinstance(frames, list) else [frames]


def load_structure(source: Optional[str], frame: int, training_data):
    """The starting structure: frame ``frame`` of ``source`` (see :func:`_frames`), as ``ase.Atoms``
    without calculator or constraints."""
    frames = _frames(source, training_data)
    if not -len(frames) <= frame < len(frames):
        raise ValueError(f"{source or 'training data'}: frame {frame} asked, {len(frames)} frames")
    atoms = frames[frame].copy()
    atoms.calc = None
    atoms.set_constraint()
    return atoms


def closest_pair(atoms, within: float = OVERLAP_DISTANCE) -> Optional[Tuple[int, int, float]]:
    """The closest pair ``(i, j, distance)`` nearer than ``within`` Å (periodic images included),
    or ``None``."""
    from vesin import NeighborList

    box = np.asarray(atoms.cell) if atoms.pbc.any() else np.zeros((3, 3))
    i, j, d = NeighborList(cutoff=within, full_list=False).compute(atoms.positions, box, atoms.pbc, quantities="ijd")
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def check_start(atoms, elements, cutoff: float) -> None:
    """Reject a start no simulation should take, with one line naming the problem.

    Raises:
        ValueError: unknown elements, a periodic cell of zero volume, overlapping atoms, an atom
            with no neighbour within the model's cutoff.
    """
    import torch

    from ..atomistic import Structure, frame_graph
    from ..neighbors import check_structure
    from ..training.task import check_elements

    check_elements(torch.as_tensor(atoms.numbers), elements)
    cell = torch.tensor(np.asarray(atoms.cell), dtype=torch.float64) if atoms.pbc.any() else None
    structure = Structure(torch.as_tensor(atoms.numbers), torch.tensor(atoms.positions, dtype=torch.float64), cell, tuple(atoms.pbc))
    check_structure(structure.positions, structure.numbers, structure.cell, structure.pbc)
    overlap = closest_pair(atoms)
    if overlap is not None:
        raise ValueError(f"atoms {overlap[0]} and {overlap[1]} overlap ({overlap[2]:.3f} Å apart)")
    frame_graph(structure, cutoff)  # raises for an atom without neighbours


class _Watch:
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
        """The largest |bond length - reference| (Å) of a molecule; NaN for cells."""
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


class _Log:
    """``log.csv``: one row per ``log_every`` steps."""

    def __init__(self, path: Path, dynamics, watch: _Watch) -> None:
        self.chain = hasattr(dynamics, "get_conserved_energy")
        self.periodic = watch.periodic
        self.columns = ["step", "time_ps", "potential_eV", "kinetic_eV", "total_eV", "temperature_K"]
        self.columns += ["conserved_eV"] * self.chain + ["pressure_bar", "volume_A3"] * self.periodic
        self.columns += ["max_bond_deviation_A"] * (not self.periodic)
        new = not path.exists() or path.stat().st_size == 0
        self.handle = open(path, "a", newline="")
        self.writer = csv.writer(self.handle)
        if new:
            self.writer.writerow(self.columns)

    def row(self, dynamics, deviation: float) -> float:
        """Write the row of the current step; returns the potential energy."""
        from ase import units

        atoms = dynamics.atoms
        potential = float(atoms.get_potential_energy())
        kinetic = float(atoms.get_kinetic_energy())
        values = [dynamics.nsteps, dynamics.nsteps * dynamics.dt / (1000 * units.fs), potential, kinetic, potential + kinetic]
        values.append(atoms.get_temperature())
        if self.chain:
            values.append(dynamics.get_conserved_energy())
        if self.periodic:
            stress = atoms.get_stress(voigt=False, include_ideal_gas=True)
            values += [-np.trace(stress) / 3 / units.bar, atoms.get_volume()]
        else:
            values.append(deviation)
        self.writer.writerow([values[0]] + [repr(float(v)) for v in values[1:]])  # exact: drifts of µeV stay visible
        return potential

    def sync(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()


def _write_frame(handle, atoms, step: int, time_ps: float) -> int:
    """Append one frame (energy, forces, momenta) to the open extxyz ``handle``; returns the
    file's length once it is on disk."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io.extxyz import write_extxyz

    frame = atoms.copy()
    frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    frame.info.update(step=step, time_ps=time_ps)
    buffer = io.StringIO()
    write_extxyz(buffer, [frame])
    handle.write(buffer.getvalue())
    handle.flush()
    os.fsync(handle.fileno())
    return handle.tell()


def _initial_velocities(atoms, config: MDConfig) -> None:
    """Maxwell-Boltzmann momenta at ``config.temperature`` (seeded), without net momentum, and
    without net rotation for molecules."""
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(config.seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, config.temperature, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=config.temperature, rng=rng)
    vd.Stationary(atoms)
    if not atoms.pbc.any():
        vd.ZeroRotation(atoms)


def _same_run(stored: Dict[str, Any], config: MDConfig) -> None:
    """A resume must continue the same run (its checkpoint is checked by content): only its length,
    the device and the paths may change."""
    given = config.to_dict()
    differ = sorted(k for k in given if k not in ("time", "output", "device", "checkpoint") and stored.get(k) != given[k])
    if differ:
        raise ValueError(f"md: --resume with settings that differ from the run in {config.output}: {differ}")


def _reference(training_data) -> List:
    """The checkpoint's training frames, or none when there are none or they cannot be read here."""
    if training_data is None:
        return []
    try:
        return _frames(None, training_data)
    except (OSError, ValueError):
        return []


def _ns_per_day(config: MDConfig, wall: float, steps: int) -> float:
    return steps * config.timestep * 1e-6 / (wall / 86400.0) if wall > 0 else 0.0


def _progress(config: MDConfig, done: int, show: bool):
    import sys

    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=config.steps, initial=done, unit="step", disable=not show, mininterval=0.5 if tty else 30.0, dynamic_ncols=tty)


def stored_config(output) -> MDConfig:
    """The config of the run in folder ``output`` (to resume it without repeating its settings).

    Raises:
        ValueError: the folder holds no ``freecg md`` run.
    """
    path = Path(output) / "run.json"
    if not path.is_file():
        raise ValueError(f"md: nothing to resume in {output} (no run.json)")
    return MDConfig(**dict(json.loads(path.read_text())["config"], output=str(output)))


def simulate(config: MDConfig, resume: bool = False, progress: bool = True) -> MDRun:
    """Run (or, with ``resume``, continue) the simulation ``config`` describes.

    Raises:
        ValueError: bad input, before any step (see :func:`check_start`); an output folder that
            already holds a run (without ``resume``) or none to resume; a resume whose settings
            or checkpoint differ from the run's.
    """
    output = Path(config.output)
    checkpoint = Path(config.checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    if (output / "run.json").is_file() and not resume:
        raise ValueError(f"md: {output} already holds a run: `--resume` continues it, or choose another --output")
    if resume and not (output / "state.npz").is_file():
        raise ValueError(f"md: nothing to resume in {output} (no state.npz)")
    digest = sha256_of(checkpoint)
    if resume:
        stored = json.loads((output / "run.json").read_text())
        _same_run(stored["config"], config)
        if stored["checkpoint_sha256"] != digest:
            raise ValueError(f"md: {checkpoint} is not the checkpoint this run started with (SHA-256 differs)")
        if (output / "summary.json").is_file():
            summary = MDRun(**json.loads((output / "summary.json").read_text()))
            if summary.status != "completed" or summary.steps >= config.steps:
                return summary

    potential = load_potential(checkpoint, config.device, config.dtype, config.energy_unit)
    if potential.training_data is None and config.structure is None:
        raise ValueError(f"md: {checkpoint.name} carries no training data to start from: give --structure")
    atoms = load_structure(config.structure, config.frame, potential.training_data)
    check_start(atoms, potential.elements, potential.cutoff)
    reference = _frames(config.reference, potential.training_data) if config.reference else _reference(potential.training_data)
    watch = _Watch(config, atoms, reference)
    dt_ps = config.timestep / 1000.0

    if resume:
        state = dict(np.load(output / "state.npz", allow_pickle=False))
        atoms.positions = state.pop("positions")
        atoms.set_momenta(state.pop("momenta"))
        atoms.cell = state.pop("cell")
        for name, key in (("trajectory.extxyz", "trajectory_bytes"), ("log.csv", "log_bytes")):
            with open(output / name, "r+b") as handle:
                handle.truncate(int(state.pop(key)))
        wall, timed, since_check = float(state.pop("wall_seconds")), int(state.pop("timed_steps")), int(state.pop("since_check"))
        if watch.rdf_reference:  # refill the RDF window from the trajectory
            import ase.io

            for frame in ase.io.read(output / "trajectory.extxyz", f"-{watch.window}:"):
                watch.frames.append((float(frame.info["time_ps"]), frame.positions.copy(), np.asarray(frame.cell).copy()))
            watch.frames = watch.frames[-watch.window :]
        watch.since_check = since_check
        (output / "summary.json").unlink(missing_ok=True)
    else:
        output.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            (output / name).unlink(missing_ok=True)
        if config.temperature > 0:
            _initial_velocities(atoms, config)
        wall, timed = 0.0, 0
        record = dict(
            config=config.to_dict(),
            checkpoint_sha256=digest,
            atoms=len(atoms),
            elements=sorted(set(atoms.numbers.tolist())),
            periodic=bool(atoms.pbc.any()),
            model=potential.kind,
            training_data=None if potential.training_data is None else asdict(potential.training_data),
            reference=config.reference or ("training data" if reference else "starting structure"),
        )
        write_atomic(output / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))

    atoms.calc = potential.calculator
    dynamics = build_dynamics(atoms, config)
    if resume:
        restore_integrator_state(dynamics, state)
    log = _Log(output / "log.csv", dynamics, watch)
    trajectory = open(output / "trajectory.extxyz", "a")

    def save() -> None:
        wrap_positions(dynamics)
        trajectory_bytes = _write_frame(trajectory, atoms, dynamics.nsteps, dynamics.nsteps * dt_ps)
        arrays = dict(
            integrator_state(dynamics),
            positions=atoms.positions,
            momenta=atoms.get_momenta(),
            cell=np.asarray(atoms.cell),
            trajectory_bytes=np.array(trajectory_bytes),
            log_bytes=np.array(log.sync()),
            wall_seconds=np.array(wall),
            timed_steps=np.array(timed),
            since_check=np.array(watch.since_check),
        )
        write_atomic(output / "state.npz", lambda tmp: np.savez(tmp, **arrays))

    first_failure = None
    try:
        if not resume:
            deviation = watch.bond_deviation(atoms)
            stop = watch.on_log(atoms, 0.0, log.row(dynamics, deviation), deviation)
            save()
            if stop:
                raise ValueError(f"md: the starting structure is already unstable: {stop[1]}")
        bar = _progress(config, dynamics.nsteps, progress)
        started, timed_from = time.perf_counter(), dynamics.nsteps
        while dynamics.nsteps < config.steps:
            dynamics.step()
            dynamics.nsteps += 1
            now_ps, stop = dynamics.nsteps * dt_ps, None
            if dynamics.nsteps % config.log_every == 0 or dynamics.nsteps == config.steps:
                deviation = watch.bond_deviation(atoms)
                stop = watch.on_log(atoms, now_ps, log.row(dynamics, deviation), deviation)
            if (stop is None or stop[0] != "exploded") and (dynamics.nsteps % config.save_every == 0 or dynamics.nsteps == config.steps):
                now = time.perf_counter()
                wall, timed, started, timed_from = wall + now - started, timed + dynamics.nsteps - timed_from, now, dynamics.nsteps
                save()
                stop = stop or watch.on_frame(atoms, now_ps)
                bar.update(dynamics.nsteps - bar.n)
                bar.set_postfix_str(
                    f"{now_ps:.2f} ps, {_ns_per_day(config, wall, timed):.3g} ns/day, T {atoms.get_temperature():.0f} K", refresh=False
                )
            if stop is not None and first_failure is None:
                first_failure = stop
            if first_failure is not None and (config.stop_unstable or stop is not None and stop[0] == "exploded"):
                break
        bar.close()
    finally:
        trajectory.close()
        log.close()
    status, reason, stable = first_failure if first_failure is not None else ("completed", "", dynamics.nsteps * dt_ps)
    summary = MDRun(status, dynamics.nsteps, stable, reason, wall, timed / wall if wall else 0.0, _ns_per_day(config, wall, timed))
    write_atomic(output / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(asdict(summary), indent=1)))
    return summary
