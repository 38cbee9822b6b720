"""A ``freecg train`` checkpoint as a TorchSim model: many replicas (or different structures) in one
batched call, for TorchSim's integrators and optimisers (``torch-sim-atomistic`` on PyPI), the
batched alternative to ``freecg md``'s one-structure ASE path::

    import torch_sim as ts
    from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel

    model = FreeCGTorchSimModel("runs/small/checkpoints/best.ckpt")
    final = ts.integrate(system=[atoms] * 8, model=model, integrator=ts.Integrator.nvt_langevin,
                         n_steps=1000, temperature=500, timestep=0.0005)  # K, ps

Energies in eV, forces in eV/Å, stress (ASE's sign, ``(1/V) dE/d(strain)``) in eV/Å^3 for fully
periodic cells when ``compute_stress``.
"""

from __future__ import annotations

import torch
from torch_sim.models.interface import ModelInterface

from ..atomistic import Structure, check_elements, collate, evaluate
from ..checkpoint import load_trained_model

__all__ = ["FreeCGTorchSimModel"]


class FreeCGTorchSimModel(ModelInterface):
    """TorchSim's model interface around a ``freecg train`` checkpoint.

    Args:
        checkpoint: ``OUTPUT/checkpoints/best.ckpt`` of ``freecg train``.
        device, dtype: where and in which precision the model runs.
        compute_stress: also return the stress (fully periodic systems; NPT needs it).
    """

    def __init__(self, checkpoint: str, device: str = "cpu", dtype: torch.dtype = torch.float64, compute_stress: bool = False) -> None:
        super().__init__()
        loaded = load_trained_model(checkpoint, device, dtype)
        self.model, self.elements, self.cutoff, self.to_eV = loaded.model, loaded.elements, loaded.cutoff, loaded.to_eV
        self.config = loaded.config  # the training config (its data: starting structures, reference frames)
        self._device, self._dtype = torch.device(device), dtype
        self._compute_forces, self._compute_stress = True, compute_stress
        self._memory_scales_with = "n_atoms_x_density"
        self._checked = None  # the atomic numbers last checked against the model's elements

    def forward(self, state, **kwargs) -> dict:
        """``energy [n_systems]``, ``forces [n_atoms, 3]`` (and ``stress [n_systems, 3, 3]``) of
        ``state`` (a ``torch_sim.SimState``)."""
        numbers = state.atomic_numbers
        if self._checked is None or not torch.equal(self._checked, numbers):
            check_elements(numbers.cpu(), self.elements)
            self._checked = numbers.clone()
        pbc = tuple(bool(p) for p in state.pbc.reshape(-1).expand(3))
        cells = state.row_vector_cell.to(self._dtype)
        positions = state.positions.to(self._dtype)
        structures = []  # TorchSim keeps the atoms system by system, the order collate concatenates them in
        for system in range(state.n_systems):
            atoms = state.system_idx == system
            structures.append(Structure(numbers[atoms], positions[atoms], cells[system] if any(pbc) else None, pbc))
        want_stress = self._compute_stress and all(pbc)
        graph = collate(structures, self.cutoff, allow_isolated=True, min_distance=None).to(self._device)
        out = evaluate(self.model, graph, forces=True, stress=want_stress)
        results = {"energy": out["energy"].detach() * self.to_eV, "forces": out["forces"].detach() * self.to_eV}
        if want_stress:
            results["stress"] = out["stress"].detach() * self.to_eV
        return results
