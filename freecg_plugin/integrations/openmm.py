"""A trained potential in OpenMM through ``openmmml`` (``pip install openmm openmmml``): the
package registers ``freecg`` as an ``openmmml.potentials`` entry point, so

.. code-block:: python

    from openmmml import MLPotential

    potential = MLPotential("freecg", model="aspirin.freecg")   # a model file or a checkpoint
    system = potential.createSystem(topology)

works as it does for MACE or NequIP. The model runs in an ``openmm.PythonForce`` (no
``openmmtorch`` needed): OpenMM hands it positions in nm (and the box for periodic topologies),
it returns the energy in kJ/mol and forces in kJ/mol/nm. ``device`` and ``dtype`` choose where
and in which precision the model runs.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch

from ..atomistic import Structure, check_elements, collate, evaluate
from ..checkpoint import load_trained_model

__all__ = ["FreeCGPotentialImpl", "FreeCGPotentialImplFactory"]

KJ_PER_MOL_PER_EV = 96.48533212331
"""1 eV in kJ/mol."""


class FreeCGPotentialImplFactory:
    """What ``MLPotential("freecg", model=..., device=..., dtype=...)`` builds (openmmml's factory
    protocol). Defined before openmmml is imported: openmmml loads its entry points, this one
    included, while it is being imported."""

    def createImpl(self, name: str, model: Optional[str] = None, device: str = "cpu", dtype: str = "float64", **args):
        if model is None:
            raise ValueError("MLPotential('freecg') needs model=PATH (a .freecg model file or a freecg train checkpoint)")
        return FreeCGPotentialImpl(str(model), device, dtype)


from openmmml.mlpotential import MLPotentialImpl  # noqa: E402  (after the factory: see its docstring)


class FreeCGPotentialImpl(MLPotentialImpl):
    """Adds a freecg potential to an OpenMM ``System`` as a ``PythonForce``."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "float64") -> None:
        self.trained = load_trained_model(model, device, getattr(torch, dtype))
        self.device, self.dtype = torch.device(device), getattr(torch, dtype)

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int, **args) -> None:
        import openmm

        included = list(topology.atoms())
        if atoms is not None:
            included = [included[i] for i in atoms]
        if any(atom.element is None for atom in included):
            raise ValueError("freecg in OpenMM: every atom of the topology needs an element")
        numbers = torch.tensor([atom.element.atomic_number for atom in included], dtype=torch.long, device=self.device)
        check_elements(numbers.cpu(), self.trained.elements)
        periodic = topology.getPeriodicBoxVectors() is not None
        force = openmm.PythonForce(lambda state: self._compute(state, numbers, periodic))
        force.setForceGroup(forceGroup)
        force.setUsesPeriodicBoundaryConditions(periodic)
        if atoms is not None:
            force.setParticles(list(atoms))
        system.addForce(force)

    def _compute(self, state, numbers: torch.Tensor, periodic: bool):
        from openmm import unit

        positions = torch.tensor(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom), dtype=self.dtype, device=self.device)
        cell = None
        if periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
            cell = torch.tensor(np.asarray(box), dtype=self.dtype, device=self.device)
        graph = collate([Structure(numbers, positions, cell, periodic)], self.trained.cutoff, allow_isolated=True, min_distance=None)
        out = evaluate(self.trained.model, graph, forces=True)
        scale = self.trained.to_eV * KJ_PER_MOL_PER_EV
        energy = float(out["energy"][0].detach()) * scale
        forces = out["forces"].detach().cpu().double().numpy() * scale * 10.0  # per Å -> per nm
        return energy, forces
