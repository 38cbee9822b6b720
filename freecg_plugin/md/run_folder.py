"""The files of a ``freecg md`` run folder, written as the run goes: ``run.json`` (what runs),
``log.csv`` (:class:`RunLog`), ``trajectory.extxyz`` (:func:`write_frame`), ``state.npz`` (what
it takes to continue, :func:`save_state` / :func:`restore_state`) and ``summary.json``."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from ..configs.md import MDConfig
from ..files import write_atomic, write_json
from .integrators import integrator_state, wrap_positions
from .watch import StabilityWatch

__all__ = ["FILES", "RunFiles", "RunLog", "check_same_run", "restore_state", "start_folder", "stored_config", "write_frame"]

FILES = ("run.json", "trajectory.extxyz", "log.csv", "state.npz", "summary.json")


class RunLog:
    """``log.csv``: one row per ``log_every`` steps."""

    def __init__(self, path: Path, dynamics, watch: StabilityWatch) -> None:
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


def write_frame(handle, atoms, step: int, time_ps: float) -> int:
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


def check_same_run(stored: Dict[str, Any], config: MDConfig) -> None:
    """A resume must continue the same run (its checkpoint is checked by content): only its length,
    the device and the paths may change."""
    given = config.to_dict()
    differ = sorted(k for k in given if k not in ("time", "output", "device", "checkpoint") and stored.get(k) != given[k])
    if differ:
        raise ValueError(f"md: --resume with settings that differ from the run in {config.output}: {differ}")


def stored_config(output) -> MDConfig:
    """The config of the run in folder ``output`` (to resume it without repeating its settings).

    Raises:
        ValueError: the folder holds no ``freecg md`` run.
    """
    path = Path(output) / "run.json"
    if not path.is_file():
        raise ValueError(f"md: nothing to resume in {output} (no run.json)")
    return MDConfig(**dict(json.loads(path.read_text())["config"], output=str(output)))


def start_folder(output: Path, record: Dict[str, Any]) -> None:
    """A new run in ``output``: earlier run files removed, ``run.json`` written."""
    output.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (output / name).unlink(missing_ok=True)
    write_json(output / "run.json", record)


def restore_state(output: Path, atoms, watch: StabilityWatch) -> Tuple[Dict[str, np.ndarray], float, int]:
    """Continue the run in ``output`` from its ``state.npz``: ``atoms`` and ``watch`` as they
    were, the trajectory and log cut back to it (what a kill -9 may have left half-written), the
    summary of an earlier end removed. Returns the integrator's state, the loop's wall seconds
    and the steps they timed."""
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
    return state, wall, timed


class RunFiles:
    """The files a running simulation appends to (``log.csv``, ``trajectory.extxyz``) and its
    resumable state (``state.npz``, rewritten whole with every saved frame)."""

    def __init__(self, output: Path, dynamics, watch: StabilityWatch, dt_ps: float) -> None:
        self.output, self.dynamics, self.watch, self.dt_ps = output, dynamics, watch, dt_ps
        self.log = RunLog(output / "log.csv", dynamics, watch)
        self.trajectory = open(output / "trajectory.extxyz", "a")

    def save(self, wall: float, timed: int) -> None:
        """A trajectory frame and, once it is on disk, the state to continue from it."""
        dynamics, atoms = self.dynamics, self.dynamics.atoms
        wrap_positions(dynamics)
        trajectory_bytes = write_frame(self.trajectory, atoms, dynamics.nsteps, dynamics.nsteps * self.dt_ps)
        arrays = dict(
            integrator_state(dynamics),
            positions=atoms.positions,
            momenta=atoms.get_momenta(),
            cell=np.asarray(atoms.cell),
            trajectory_bytes=np.array(trajectory_bytes),
            log_bytes=np.array(self.log.sync()),
            wall_seconds=np.array(wall),
            timed_steps=np.array(timed),
            since_check=np.array(self.watch.since_check),
        )
        write_atomic(self.output / "state.npz", lambda tmp: np.savez(tmp, **arrays))

    def close(self) -> None:
        self.trajectory.close()
        self.log.close()
