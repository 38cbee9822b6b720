"""ASE calculator for a trained checkpoint: energy, forces, and stress for bulk cells (eV, Å);
molecules, bulk cells and slabs (periodic along some cell vectors only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .atomistic import Structure, collate, evaluate
from .data.units import convert_energy
from .training.task import check_elements, load_task

__all__ = ["FreeCGCalculator", "InferenceModel", "load_inference_model"]


@dataclass
class InferenceModel:
    """A checkpoint's model ready to evaluate: ``model`` (eval mode, in the asked dtype; a graph
    energy model, see :mod:`freecg_plugin.atomistic`), its training ``config``, the ``elements``
    (atomic numbers) it knows, its ``cutoff`` (Å) and ``to_eV``, the factor from its energy unit to eV."""

    model: torch.nn.Module
    config: object
    elements: list
    cutoff: float
    to_eV: float


def load_inference_model(checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float64) -> InferenceModel:
    """The model of a ``freecg train`` checkpoint, for energies and forces (ASE, TorchSim)."""
    task = load_task(checkpoint, device)
    model = task.inference_model.to(dtype).eval()
    return InferenceModel(model, task.config, task.elements, task.config.model.cutoff, convert_energy(1.0, task.energy_unit, "eV"))


class FreeCGCalculator(Calculator):
    """``FreeCGCalculator("runs/small/checkpoints/best.ckpt")``; works in ``ase.md`` dynamics.

    The model's energies are in the unit of its training data (stored in the checkpoint) and are
    converted to eV (forces to eV/Å, stress to eV/Å^3) for ASE.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float64, **kwargs) -> None:
        super().__init__(**kwargs)
        loaded = load_inference_model(checkpoint, device, dtype)
        self.config = loaded.config  # the training config (data, model, recipe)
        self.elements, self.model, self.cutoff, self.scale = loaded.elements, loaded.model, loaded.cutoff, loaded.to_eV
        self.device, self.dtype = device, dtype

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if "numbers" in system_changes:
            check_elements(torch.as_tensor(self.atoms.numbers), self.elements)
        pbc = tuple(bool(p) for p in self.atoms.pbc)
        structure = Structure(
            torch.tensor(self.atoms.numbers, dtype=torch.long, device=self.device),
            torch.tensor(self.atoms.positions, dtype=self.dtype, device=self.device),
            torch.tensor(np.asarray(self.atoms.cell), dtype=self.dtype, device=self.device) if any(pbc) else None,
            pbc,
        )
        want_stress = structure.fully_periodic and "stress" in properties  # the strain derivative only when asked
        out = evaluate(self.model, collate([structure], self.cutoff, allow_isolated=True), forces=True, stress=want_stress)
        energy = float(out["energy"][0].detach()) * self.scale
        self.results = {"energy": energy, "free_energy": energy, "forces": out["forces"].detach().cpu().numpy() * self.scale}
        if want_stress:
            stress = out["stress"][0].detach().cpu().numpy() * self.scale
            self.results["stress"] = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]  # Voigt: xx yy zz yz xz xy
