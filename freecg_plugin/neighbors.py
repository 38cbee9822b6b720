"""Neighbour lists for molecules, periodic cells (any triclinic cell, smaller than 2x cutoff
included) and slabs or wires (periodic along some cell vectors only), via vesin (an O(N) cell
list). No pyg-lib or torch-cluster needed.

Convention: edge ``e`` goes from source ``j = edge_index[0, e]`` to target ``i = edge_index[1, e]``
and its vector is ``r_ij = pos[j] - pos[i] + shifts[e] @ cell`` (``shifts`` are integer cell
translations). The list is computed without gradients; build vectors with :func:`edge_vectors`
so forces and stress flow through positions and cell.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["check_structure", "edge_vectors", "neighbor_list"]


def check_structure(positions: Tensor, numbers: Tensor, cell: Optional[Tensor] = None, pbc=False) -> None:
    """Reject inputs no model can use, with an error that names the problem.

    Raises:
        ValueError: empty structure, mismatched shapes, NaN/inf positions or cell, a periodic cell
            with zero volume.
    """
    if positions.dim() != 2 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [N, 3], got {list(positions.shape)}")
    if positions.shape[0] == 0:
        raise ValueError("empty structure: no atoms")
    if numbers.shape != positions.shape[:1]:
        raise ValueError(f"{numbers.shape[0]} atomic numbers for {positions.shape[0]} positions")
    bad = ~torch.isfinite(positions).all(dim=1)
    if bad.any():
        raise ValueError(f"non-finite (NaN/inf) positions for atoms {bad.nonzero().view(-1).tolist()[:10]}")
    if cell is not None and bool(np.any(pbc)):
        if cell.shape != (3, 3) or not torch.isfinite(cell).all():
            raise ValueError(f"cell must be a finite [3, 3] matrix (rows = lattice vectors), got {cell}")
        if abs(float(torch.linalg.det(cell.detach().double()))) < 1e-8:
            raise ValueError(f"periodic cell with zero volume: {cell.tolist()}")


def neighbor_list(
    positions: Tensor,
    cutoff: float,
    cell: Optional[Tensor] = None,
    pbc: Union[bool, Sequence[bool]] = False,
) -> Tuple[Tensor, Tensor]:
    """All pairs ``i != j`` (and periodic images of i itself) closer than ``cutoff``.

    Args:
        positions: ``[N, 3]`` in Å.
        cutoff: in Å.
        cell: ``[3, 3]``, rows are lattice vectors (needed when any ``pbc``).
        pbc: periodicity per axis (or one bool).

    Returns:
        ``edge_index [2, E]`` (row 0 source j, row 1 target i, sorted by i) and integer
        ``shifts [E, 3]`` (as positions' dtype).
    """
    from vesin import NeighborList

    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    periodic = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if periodic.any() and cell is None:
        raise ValueError("periodic boundary conditions need a cell")
    box = np.zeros((3, 3)) if cell is None or not periodic.any() else cell.detach().cpu().double().numpy()
    points = positions.detach().cpu().double().numpy()
    i, j, s = NeighborList(cutoff=float(cutoff), full_list=True).compute(points, box, periodic, quantities="ijS")
    order = np.lexsort((j, i))
    edge_index = torch.from_numpy(np.stack([j[order], i[order]]).astype(np.int64)).to(positions.device)
    shifts = torch.from_numpy(s[order].astype(np.float64)).to(positions.device, positions.dtype)
    return edge_index, shifts


def edge_vectors(positions: Tensor, edge_index: Tensor, shifts: Tensor, cell: Optional[Tensor] = None) -> Tensor:
    """``r_ij = pos[j] - pos[i] + shifts @ cell`` for every edge (differentiable)."""
    vectors = positions[edge_index[0]] - positions[edge_index[1]]
    if cell is not None:
        vectors = vectors + shifts @ cell
    return vectors
