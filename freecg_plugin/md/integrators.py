"""ASE integrators for :class:`~freecg_plugin.md.config.MDConfig`, and their complete state.

The state of a run is more than positions and momenta: the Langevin noise generator, the
Nosé-Hoover chain's coordinates and momenta, the MTK barostat's strain. :func:`integrator_state`
reads all of it as arrays and :func:`restore_integrator_state` writes it back, so that a resumed
run continues exactly where it was saved.
"""

from __future__ import annotations

import json
from typing import Dict

import numpy as np
from ase import Atoms, units
from ase.md.md import MolecularDynamics

from ..configs.md import MDConfig

__all__ = ["build_dynamics", "integrator_state", "restore_integrator_state", "wrap_positions"]


def build_dynamics(atoms: Atoms, config: MDConfig) -> MolecularDynamics:
    """The integrator ``config.ensemble`` names, on ``atoms`` (positions and momenta set).

    Raises:
        ValueError: NPT for a structure that is not periodic along all three cell vectors.
    """
    dt = config.timestep * units.fs
    if config.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if config.ensemble == "langevin":
        from ase.md.langevin import Langevin

        rng = np.random.default_rng(config.seed + 1)  # the velocity draw uses `seed`
        return Langevin(atoms, timestep=dt, temperature_K=config.temperature, friction=config.friction / units.fs, fixcm=False, rng=rng)
    tdamp = (config.tdamp if config.tdamp is not None else 100 * config.timestep) * units.fs
    if config.ensemble == "nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=config.temperature, tdamp=tdamp)
    if not atoms.pbc.all():
        raise ValueError("md: npt needs a cell periodic along all three vectors")
    from ase.md.nose_hoover_chain import IsotropicMTKNPT

    pdamp = (config.pdamp if config.pdamp is not None else 1000 * config.timestep) * units.fs
    return IsotropicMTKNPT(
        atoms, timestep=dt, temperature_K=config.temperature, pressure_au=config.pressure * units.bar, tdamp=tdamp, pdamp=pdamp
    )


# attributes of ASE's integrators that hold state beyond the atoms (names as in ASE 3.23-3.29)
_CHAIN = ("_eta", "_p_eta")
_BAROSTAT = ("_xi", "_p_xi")
_NPT = ("_eps", "_p_eps", "_cell0", "_volume0")


def integrator_state(dynamics: MolecularDynamics) -> Dict[str, np.ndarray]:
    """Everything ``dynamics`` needs besides the atoms to continue, as arrays (``nsteps``
    included)."""
    state = {"nsteps": np.array(dynamics.nsteps)}
    rng = getattr(dynamics, "rng", None)
    if isinstance(rng, np.random.Generator):
        state["rng"] = np.array(json.dumps(rng.bit_generator.state))
    thermostat = getattr(dynamics, "_thermostat", None)
    if thermostat is not None:
        state.update({f"thermostat{name}": np.array(getattr(thermostat, name)) for name in _CHAIN})
    barostat = getattr(dynamics, "_barostat", None)
    if barostat is not None:
        state.update({f"barostat{name}": np.array(getattr(barostat, name)) for name in _BAROSTAT})
        state.update({f"npt{name}": np.array(getattr(dynamics, name)) for name in _NPT})
    return state


def restore_integrator_state(dynamics: MolecularDynamics, state: Dict[str, np.ndarray]) -> None:
    """Write back what :func:`integrator_state` read (onto an integrator built by
    :func:`build_dynamics` with the same config, on atoms already restored)."""
    dynamics.nsteps = int(state["nsteps"])
    if "rng" in state:
        dynamics.rng.bit_generator.state = json.loads(str(state["rng"]))
    for key, value in state.items():
        owner, _, name = key.partition("_")
        name = "_" + name
        if owner == "thermostat":
            setattr(dynamics._thermostat, name, np.array(value, dtype=np.float64))
        elif owner == "barostat":
            setattr(dynamics._barostat, name, np.array(value, dtype=np.float64))
        elif owner == "npt":
            setattr(dynamics, name, np.array(value, dtype=np.float64) if np.ndim(value) else float(value))
    if hasattr(dynamics, "_q"):  # the chain integrators keep their own copy of positions and momenta
        dynamics._q = dynamics.atoms.get_positions()
        dynamics._p = dynamics.atoms.get_momenta()


def wrap_positions(dynamics: MolecularDynamics) -> None:
    """Move atoms that left a periodic cell back into it (forces do not change), keeping the
    integrator's own copy of the positions in step."""
    atoms = dynamics.atoms
    if not atoms.pbc.any():
        return
    atoms.wrap()
    if hasattr(dynamics, "_q"):
        dynamics._q = atoms.get_positions()
