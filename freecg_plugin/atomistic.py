"""Structures -> batched graphs -> energy, forces and stress, for any graph energy model.

A graph energy model is called as ``model(numbers, positions, batch, edge_index, edge_vec,
num_graphs) -> energy [num_graphs]`` (e.g. :class:`freecg_plugin.adapters.pyg_visnet.ViSNetPotential`).
Forces are ``-dE/dr``; stress is ``(1/V) dE/d(strain)`` (ASE's convention, eV/Å^3 when energies
are in eV), taken through a symmetric strain applied to positions and cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .neighbors import check_structure, neighbor_list

__all__ = [
    "MIN_DISTANCE",
    "GraphBatch",
    "ReferenceEnergies",
    "Structure",
    "check_elements",
    "collate",
    "concatenate",
    "evaluate",
    "frame_graph",
    "mean_neighbours",
]


MIN_DISTANCE = 0.1
"""Å: atoms closer than this overlap (no model was trained there); the structure is refused."""


def check_elements(numbers: Tensor, elements: Optional[Sequence[int]]) -> None:
    """Raise ``ValueError`` naming any element of ``numbers`` not in ``elements`` (``None``: any)."""
    if elements is None:
        return
    unknown = sorted(set(numbers.tolist()) - set(elements))
    if unknown:
        raise ValueError(f"unknown elements Z={unknown}: this model was trained on Z={list(elements)}")


@dataclass
class Structure:
    """One structure: ``numbers [n]``, ``positions [n, 3]`` (Å), optional ``cell [3, 3]``
    (rows are lattice vectors) with ``pbc``: one bool, or one per cell vector (a slab is
    ``(True, True, False)``)."""

    numbers: Tensor
    positions: Tensor
    cell: Optional[Tensor] = None
    pbc: Union[bool, Tuple[bool, bool, bool]] = False

    @property
    def axes(self) -> Tuple[bool, bool, bool]:
        """Periodicity along each cell vector (none without a cell)."""
        if self.cell is None:
            return (False, False, False)
        return tuple(bool(p) for p in self.pbc) if isinstance(self.pbc, tuple) else (bool(self.pbc),) * 3

    @property
    def periodic(self) -> bool:
        """Periodic along at least one cell vector."""
        return any(self.axes)

    @property
    def fully_periodic(self) -> bool:
        """Periodic along all three cell vectors (a bulk cell: stress is defined)."""
        return all(self.axes)


@dataclass
class GraphBatch:
    """Structures concatenated, with their neighbour lists (edge ``j -> i``, integer ``shifts``)."""

    numbers: Tensor
    positions: Tensor
    batch: Tensor
    cell: Tensor  # [B, 3, 3]; zeros for molecules
    edge_index: Tensor
    shifts: Tensor
    num_graphs: int

    def to(self, device) -> GraphBatch:
        """The same batch on ``device``."""
        return GraphBatch(
            *(t.to(device) for t in (self.numbers, self.positions, self.batch, self.cell, self.edge_index, self.shifts)), self.num_graphs
        )


def frame_graph(
    structure: Structure, cutoff: float, allow_isolated: bool = False, min_distance: Optional[float] = MIN_DISTANCE
) -> GraphBatch:
    """One structure, checked, with its neighbour list: a batch of one.

    Raises:
        ValueError: for a bad structure (see :func:`check_structure`), two atoms closer than
            ``min_distance`` (``None``: not checked, as the simulation engines do during dynamics,
            where the stability checks judge a collapsing structure), or an atom with no neighbour
            within the cutoff (unless ``allow_isolated``).
    """
    s = structure
    check_structure(s.positions, s.numbers, s.cell, s.pbc)
    edge_index, shift = neighbor_list(s.positions, cutoff, s.cell, s.pbc)
    if min_distance is not None and edge_index.shape[1]:
        vectors = s.positions[edge_index[0]] - s.positions[edge_index[1]]
        if s.periodic:
            vectors = vectors + shift.to(s.positions.dtype) @ s.cell.to(s.positions.dtype)
        lengths = vectors.detach().norm(dim=1)
        closest = int(lengths.argmin())
        if float(lengths[closest]) < min_distance:
            i, j = sorted(edge_index[:, closest].tolist())
            raise ValueError(f"atoms {i} and {j} are closer than {min_distance} Å ({float(lengths[closest]):.3f} Å): overlapping atoms")
    if not allow_isolated:
        lonely = torch.ones(len(s.numbers), dtype=torch.bool)
        lonely[edge_index[1]] = False
        if lonely.any():
            raise ValueError(f"atoms {lonely.nonzero().view(-1).tolist()[:10]} have no neighbour within {cutoff} Å")
    cell = s.cell if s.periodic else torch.zeros(3, 3, dtype=s.positions.dtype)
    batch = torch.zeros(len(s.numbers), dtype=torch.long)
    return GraphBatch(s.numbers, s.positions, batch, cell.to(s.positions.dtype).unsqueeze(0), edge_index, shift, 1)


def concatenate(graphs: Sequence[GraphBatch]) -> GraphBatch:
    """Batches joined into one (atoms and edges renumbered)."""
    if not graphs:
        raise ValueError("no structures to evaluate")
    atoms = torch.tensor([0] + [g.numbers.shape[0] for g in graphs[:-1]]).cumsum(0).tolist()
    structures = torch.tensor([0] + [g.num_graphs for g in graphs[:-1]]).cumsum(0).tolist()
    return GraphBatch(
        torch.cat([g.numbers for g in graphs]),
        torch.cat([g.positions for g in graphs]),
        torch.cat([g.batch + offset for g, offset in zip(graphs, structures)]),
        torch.cat([g.cell for g in graphs]),
        torch.cat([g.edge_index + offset for g, offset in zip(graphs, atoms)], dim=1),
        torch.cat([g.shifts for g in graphs]),
        sum(g.num_graphs for g in graphs),
    )


def collate(
    structures: Sequence[Structure], cutoff: float, allow_isolated: bool = False, min_distance: Optional[float] = MIN_DISTANCE
) -> GraphBatch:
    """Check each structure, build its neighbour list and concatenate.

    Raises:
        ValueError: for an empty list, or a structure :func:`frame_graph` refuses, naming the structure.
    """
    if not structures:
        raise ValueError("no structures to evaluate")
    graphs = []
    for index, s in enumerate(structures):
        try:
            graphs.append(frame_graph(s, cutoff, allow_isolated, min_distance))
        except ValueError as err:
            raise ValueError(f"structure {index}: {err}") from None
    return concatenate(graphs)


def mean_neighbours(structures: Sequence[Structure], cutoff: float, frames: int = 100) -> float:
    """Average number of neighbours per atom within ``cutoff`` over the first ``frames`` structures."""
    graph = collate(structures[:frames], cutoff)
    return graph.edge_index.shape[1] / max(graph.numbers.shape[0], 1)


class ReferenceEnergies(torch.nn.Module):
    """A graph energy model plus per-element reference energies: ``E = model(...) + sum_i e[Z_i]``
    (isolated-atom or fitted energies, so that the model learns what the elements alone do not
    explain, and structures of different sizes and compositions share one model).

    Args:
        model: a graph energy model (see the module docstring).
        energies: ``{Z: energy}`` in the model's energy unit.
    """

    def __init__(self, model: torch.nn.Module, energies: Dict[int, float]) -> None:
        super().__init__()
        self.model = model
        table = torch.zeros(max(energies) + 1, dtype=torch.float64)
        for z, e in energies.items():
            table[int(z)] = float(e)
        self.register_buffer("energies", table)

    def forward(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor, num_graphs: int) -> Tensor:
        energy = self.model(numbers, positions, batch, edge_index, edge_vec, num_graphs)
        offset = torch.zeros(num_graphs, dtype=torch.float64, device=energy.device).index_add_(0, batch, self.energies[numbers].double())
        return energy + offset.to(energy.dtype)


def evaluate(
    model: Callable[..., Tensor],
    graph: GraphBatch,
    forces: bool = True,
    stress: bool = False,
    training: bool = False,
) -> Dict[str, Tensor]:
    """Energy ``[B]``, forces ``[N, 3]`` and stress ``[B, 3, 3]`` (when asked) by autograd.

    ``training=True`` keeps the graph of the derivatives so that a loss on forces can be
    back-propagated.
    """
    positions = graph.positions
    strain = torch.zeros(graph.num_graphs, 3, 3, dtype=positions.dtype, device=positions.device)
    if forces:
        positions = positions.detach().requires_grad_(True) if not positions.requires_grad else positions
    if stress:
        strain.requires_grad_(True)
    symmetric = 0.5 * (strain + strain.transpose(1, 2))
    deformed = positions + torch.einsum("ni,nij->nj", positions, symmetric[graph.batch])
    cell = graph.cell + torch.bmm(graph.cell, symmetric)
    src, dst = graph.edge_index
    edge_vec = deformed[src] - deformed[dst] + torch.einsum("ei,eij->ej", graph.shifts, cell[graph.batch[dst]])
    energy = model(graph.numbers, deformed, graph.batch, graph.edge_index, edge_vec, graph.num_graphs)
    out = {"energy": energy}
    wrt = ([positions] if forces else []) + ([strain] if stress else [])
    if wrt:
        grads = torch.autograd.grad(energy.sum(), wrt, create_graph=training)
        if forces:
            out["forces"] = -grads[0]
        if stress:
            volume = torch.linalg.det(graph.cell).abs().unsqueeze(-1).unsqueeze(-1)
            out["stress"] = grads[-1] / volume
    return out
