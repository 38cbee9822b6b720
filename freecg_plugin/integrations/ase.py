"""ASE calculator for a trained checkpoint: energy, forces, and stress for bulk cells (eV, Å);
molecules, bulk cells and slabs (periodic along some cell vectors only)."""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ..atomistic import Structure, check_elements, collate, evaluate
from ..checkpoint import load_trained_model

__all__ = ["FreeCGCalculator"]


class FreeCGCalculator(Calculator):
    """``FreeCGCalculator("runs/small/checkpoints/best.ckpt")``; works in ``ase.md`` dynamics.

    The model's energies are in the unit of its training data (stored in the checkpoint) and are
    converted to eV (forces to eV/Å, stress to eV/Å^3) for ASE.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float64, **kwargs) -> None:
        super().__init__(**kwargs)
        loaded = load_trained_model(checkpoint, device, dtype)
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
        out = evaluate(
            self.model, collate([structure], self.cutoff, allow_isolated=True, min_distance=None), forces=True, stress=want_stress
        )
        energy = float(out["energy"][0].detach()) * self.scale
        self.results = {"energy": energy, "free_energy": energy, "forces": out["forces"].detach().cpu().numpy() * self.scale}
        if want_stress:
            stress = out["stress"][0].detach().cpu().numpy() * self.scale
            self.results["stress"] = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]  # Voigt: xx yy zz yz xz xy
