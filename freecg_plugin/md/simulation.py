"""``freecg md``: a trained model run in ASE's integrators, written as it goes, resumable, and
stopped when the simulation stops being physical.

An output folder holds (:mod:`~freecg_plugin.md.run_folder`)

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

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..configs.md import MDConfig
from ..data.registry import sha256_of
from ..files import check_writable, write_json
from .integrators import build_dynamics, restore_integrator_state
from .potentials import load_potential
from .run_folder import RunFiles, check_same_run, restore_state, start_folder, stored_config
from .start import check_start, initial_velocities, load_structure, read_frames, reference_frames
from .watch import StabilityWatch

__all__ = ["MDRun", "simulate", "stored_config"]


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


def _ns_per_day(config: MDConfig, wall: float, steps: int) -> float:
    return steps * config.timestep * 1e-6 / (wall / 86400.0) if wall > 0 else 0.0


def _progress(config: MDConfig, done: int, show: bool):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=config.steps, initial=done, unit="step", disable=not show, mininterval=0.5 if tty else 30.0, dynamic_ncols=tty)


def _check_folder(config: MDConfig, resume: bool) -> str:
    """The checks on the run folder and checkpoint before anything loads; returns the checkpoint's
    SHA-256."""
    output, checkpoint = Path(config.output), Path(config.checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    check_writable(output, "md: output folder")
    if (output / "run.json").is_file() and not (output / "state.npz").is_file():
        (output / "run.json").unlink()  # a start killed before its first state: nothing ran, start again
    if (output / "run.json").is_file() and not resume:
        raise ValueError(f"md: {output} already holds a run: `--resume` continues it, or choose another --output")
    if resume and not (output / "state.npz").is_file():
        raise ValueError(f"md: nothing to resume in {output} (no state.npz)")
    digest = sha256_of(checkpoint)
    if resume:
        stored = json.loads((output / "run.json").read_text())
        check_same_run(stored["config"], config)
        if stored["checkpoint_sha256"] != digest:
            raise ValueError(f"md: {checkpoint} is not the checkpoint this run started with (SHA-256 differs)")
    return digest


def _finished(config: MDConfig) -> Optional[MDRun]:
    """The summary of a run that has nothing left to do (it stopped, or reached ``config.time``)."""
    path = Path(config.output) / "summary.json"
    if path.is_file():
        summary = MDRun(**json.loads(path.read_text()))
        if summary.status != "completed" or summary.steps >= config.steps:
            return summary
    return None


def simulate(config: MDConfig, resume: bool = False, progress: bool = True) -> MDRun:
    """Run (or, with ``resume``, continue) the simulation ``config`` describes.

    Raises:
        ValueError: bad input, before any step (see :func:`~freecg_plugin.md.start.check_start`);
            an output folder that already holds a run (without ``resume``) or none to resume; a
            resume whose settings or checkpoint differ from the run's.
    """
    output = Path(config.output)
    digest = _check_folder(config, resume)
    if resume and (done := _finished(config)) is not None:
        return done

    potential = load_potential(config.checkpoint, config.device, config.dtype, config.energy_unit)
    if potential.training_data is None and config.structure is None:
        raise ValueError(f"md: {Path(config.checkpoint).name} carries no training data to start from: give --structure")
    atoms = load_structure(config.structure, config.frame, potential.training_data)
    check_start(atoms, potential.elements, potential.cutoff)
    reference = read_frames(config.reference, potential.training_data) if config.reference else reference_frames(potential.training_data)
    watch = StabilityWatch(config, atoms, reference)
    dt_ps = config.timestep / 1000.0

    if resume:
        state, wall, timed = restore_state(output, atoms, watch)
    elif config.temperature > 0:
        initial_velocities(atoms, config)
    atoms.calc = potential.calculator
    dynamics = build_dynamics(atoms, config)  # its errors (NPT for a molecule) come before anything is written
    if resume:
        restore_integrator_state(dynamics, state)
    else:
        wall, timed = 0.0, 0
        training_data = None if potential.training_data is None else asdict(potential.training_data)
        start_folder(
            output,
            dict(
                config=config.to_dict(),
                checkpoint_sha256=digest,
                atoms=len(atoms),
                elements=sorted(set(atoms.numbers.tolist())),
                periodic=bool(atoms.pbc.any()),
                model=potential.kind,
                training_data=training_data,
                reference=config.reference or ("training data" if reference else "starting structure"),
            ),
        )

    files = RunFiles(output, dynamics, watch, dt_ps)
    first_failure = None
    try:
        if not resume:
            deviation = watch.bond_deviation(atoms)
            stop = watch.on_log(atoms, 0.0, files.log.row(dynamics, deviation), deviation)
            files.save(wall, timed)
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
                stop = watch.on_log(atoms, now_ps, files.log.row(dynamics, deviation), deviation)
            if (stop is None or stop[0] != "exploded") and (dynamics.nsteps % config.save_every == 0 or dynamics.nsteps == config.steps):
                now = time.perf_counter()
                wall, timed, started, timed_from = wall + now - started, timed + dynamics.nsteps - timed_from, now, dynamics.nsteps
                files.save(wall, timed)
                stop = stop or watch.on_frame(atoms, now_ps)
                bar.update(dynamics.nsteps - bar.n)
                speed = _ns_per_day(config, wall, timed)
                bar.set_postfix_str(f"{now_ps:.2f} ps, {speed:.3g} ns/day, T {atoms.get_temperature():.0f} K", refresh=False)
            if stop is not None and first_failure is None:
                first_failure = stop
            if first_failure is not None and (config.stop_unstable or stop is not None and stop[0] == "exploded"):
                break
        bar.close()
    finally:
        files.close()
    status, reason, stable = first_failure if first_failure is not None else ("completed", "", dynamics.nsteps * dt_ps)
    summary = MDRun(status, dynamics.nsteps, stable, reason, wall, timed / wall if wall else 0.0, _ns_per_day(config, wall, timed))
    write_json(output / "summary.json", asdict(summary))
    return summary
