"""A trained potential as a metatomic model (``freecg export CKPT --format metatomic --output
model.pt``): one TorchScript file that metatomic's engines load (ASE through ``metatomic-ase``,
TorchSim through ``metatomic-torchsim``, i-PI, and LAMMPS, GROMACS and PLUMED through their
metatomic builds).

The engine computes the neighbour list the model asks for (full, strict, the model's cutoff) and
hands over each pair's distance vector, built from the positions and the cell so that forces and
stress follow by autograd in the engine. :class:`MetatomicPotential` maps those pairs onto the
graph energy model's ``edge_index`` / ``edge_vec`` (see :mod:`freecg_plugin.atomistic`) and
returns the energy in eV, per system or per atom (``selected_atoms`` picks atoms, as LAMMPS does
for its local atoms). Per-atom energies come from the same model with every atom its own graph:
the hosts sum atomic energies, so the per-atom energies add up to the total.

Only hosts whose modules TorchScript can compile export: PaiNN and SO3net (+ FreeCG). PyG's
ViSNet does not script, and NequIP/Allegro target ``torch.export`` (they reach LAMMPS through
``nequip-compile``): those are refused in one line that names the other routes.
"""

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import torch

from .. import __version__
from ..checkpoint import TrainedModel, load_trained_model
from ..files import write_in_child


@contextmanager
def _torchs_own_index_select() -> Iterator[None]:
    """PyG 2.8 replaces ``torch.index_select`` by a Python wrapper that TorchScript cannot compile
    (its ``dim`` is ``Union[int, str]``); metatensor compiles functions when imported, and saving a
    model compiles it: both run with torch's own function in place, whether or not PyG is loaded."""
    current = torch.index_select
    torch.index_select = getattr(sys.modules.get("torch_geometric.hash_tensor"), "_old_index_select", current)
    try:
        yield
    finally:
        torch.index_select = current


with _torchs_own_index_select():
    from metatensor.torch import Labels, TensorBlock, TensorMap
    from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput, NeighborListOptions, System

__all__ = ["SCRIPTABLE_HOSTS", "MetatomicPotential", "export_metatomic", "metatomic_model"]

SCRIPTABLE_HOSTS = ("painn", "so3net")
"""Hosts whose models TorchScript compiles (the metatomic format is TorchScript)."""
_LAYERS = {"painn": "n_interactions", "so3net": "n_interactions"}
_OTHER_ROUTES = {
    "visnet": "PyG's ViSNet does not compile with TorchScript",
    "nequip": "nequip models target torch.export; use `nequip-compile` for LAMMPS",
    "allegro": "Allegro models target torch.export; use `nequip-compile` for LAMMPS",
}
REFERENCE = (
    "S. Shao, H. Li, Z. Lin, Q. Cui, FreeCG: Free the Design Space of Clebsch-Gordan Transform for Machine Learning Force Fields, ICLR 2025"
)


class MetatomicPotential(torch.nn.Module):
    """A graph energy model behind metatomic's model interface.

    Args:
        model: a graph energy model (``model(numbers, positions, batch, edge_index, edge_vec,
            num_graphs) -> energy [num_graphs]``) in evaluation mode.
        cutoff: its cutoff (Å): the neighbour list it asks the engine for.
        to_eV: the factor from the model's energy unit to eV.
    """

    def __init__(self, model: torch.nn.Module, cutoff: float, to_eV: float) -> None:
        super().__init__()
        self.model = model
        self.to_eV = float(to_eV)
        self.neighbors = NeighborListOptions(cutoff=float(cutoff), full_list=True, strict=True, requestor="freecg")

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.neighbors]

    def forward(
        self, systems: List[System], outputs: Dict[str, ModelOutput], selected_atoms: Optional[Labels] = None
    ) -> Dict[str, TensorMap]:
        if "energy" not in outputs:
            return {}
        per_atom = outputs["energy"].sample_kind == "atom"
        numbers, positions, graph_of_atom, sources, targets, vectors = [], [], [], [], [], []
        offset = 0
        for index, system in enumerate(systems):
            pairs = system.get_neighbor_list(self.neighbors)
            atoms = pairs.samples.values  # [P, 5]: first atom, second atom, cell shift a, b, c
            sources.append(atoms[:, 1].to(torch.long) + offset)  # an edge j -> i is (second, first): its vector points from i to j
            targets.append(atoms[:, 0].to(torch.long) + offset)
            vectors.append(pairs.values.reshape(-1, 3))
            numbers.append(system.types.to(torch.long))
            positions.append(system.positions)
            graph_of_atom.append(torch.full((len(system),), index, dtype=torch.long, device=system.positions.device))
            offset += len(system)
        z = torch.cat(numbers)
        system_of_atom = torch.cat(graph_of_atom)
        edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
        device = z.device
        if per_atom or selected_atoms is not None:
            # every atom its own graph: the hosts sum atomic energies, so these are the atomic energies
            energy = self.model(z, torch.cat(positions), torch.arange(offset, device=device), edge_index, torch.cat(vectors), offset)
            samples = torch.stack([system_of_atom, torch.cat([torch.arange(len(s), device=device) for s in systems])], dim=1)
            if selected_atoms is not None:
                chosen = torch.zeros(offset, dtype=torch.bool, device=device)
                starts = torch.tensor([0] + [len(s) for s in systems], device=device).cumsum(0)
                picked = selected_atoms.values.to(torch.long)
                chosen[starts[picked[:, 0]] + picked[:, 1]] = True
                energy, samples, system_of_atom = energy[chosen], samples[chosen], system_of_atom[chosen]
            if not per_atom:
                energy = torch.zeros(len(systems), dtype=energy.dtype, device=device).index_add(0, system_of_atom, energy)
                samples = torch.arange(len(systems), device=device).unsqueeze(1)
        else:
            energy = self.model(z, torch.cat(positions), system_of_atom, edge_index, torch.cat(vectors), len(systems))
            samples = torch.arange(len(systems), device=device).unsqueeze(1)
        names = ["system", "atom"] if per_atom else ["system"]
        block = TensorBlock(
            values=(energy * self.to_eV).unsqueeze(1),
            samples=Labels(names, samples.to(torch.int32)),
            components=[],
            properties=Labels(["energy"], torch.zeros(1, 1, dtype=torch.int32, device=device)),
        )
        return {"energy": TensorMap(Labels(["_"], torch.zeros(1, 1, dtype=torch.int32, device=device)), [block])}


def metatomic_model(trained: TrainedModel, source: str = "") -> AtomisticModel:
    """``trained`` (see :func:`~freecg_plugin.checkpoint.load_trained_model`) as a metatomic
    ``AtomisticModel``: energies in eV, lengths in Å, its elements, and an interaction range of
    layers × cutoff (messages travel one cutoff per layer).

    Raises:
        ValueError: for a host that TorchScript cannot compile (one line, with the other routes).
    """
    host = trained.config.model.host
    if host not in SCRIPTABLE_HOSTS:
        raise ValueError(
            f"a {host} model cannot be exported for metatomic ({_OTHER_ROUTES.get(host, 'not scriptable')}); "
            "its safe model file runs in ASE, TorchSim, i-PI (through ASE) and OpenMM: `freecg export CKPT --output model.freecg`"
        )
    layers = int(trained.config.model.args[_LAYERS[host]])
    dtype = next(trained.model.parameters()).dtype
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},  # per atom, and per system by the sum
        atomic_types=list(trained.elements),
        interaction_range=layers * trained.cutoff,
        length_unit="angstrom",
        supported_devices=["cpu", "cuda"],
        dtype=str(dtype).replace("torch.", ""),
    )
    freecg = trained.config.model.freecg
    metadata = ModelMetadata(
        name=f"{host}{' + FreeCG' if freecg is not None else ''}",
        description=f"{host} potential{' with the FreeCG layer' if freecg is not None else ''}, trained with freecg-plugin"
        + (f" ({source})" if source else ""),
        references={"architecture": [REFERENCE], "implementation": [f"freecg-plugin {__version__}"]},
    )
    return AtomisticModel(MetatomicPotential(trained.model, trained.cutoff, trained.to_eV).eval(), metadata, capabilities)


def export_metatomic(checkpoint, output, dtype: torch.dtype = torch.float64) -> Path:
    """Write the potential of ``checkpoint`` (a ``freecg train`` checkpoint or a model file) as a
    metatomic model file (TorchScript), atomically, in ``dtype``.

    Raises:
        ValueError: a host that does not script, or a model TorchScript refuses (one line each).
    """
    trained = load_trained_model(checkpoint, "cpu", dtype)
    model = metatomic_model(trained, Path(checkpoint).name)
    try:
        with _torchs_own_index_select():
            write_in_child(Path(output), model.save)
    except RuntimeError as err:  # TorchScript's own message is many lines of source; its first names the cause
        cause = str(err.__cause__ or err).strip().splitlines()[0][:200]
        raise ValueError(f"{checkpoint}: TorchScript cannot compile this model ({cause})") from None
    return Path(output)
