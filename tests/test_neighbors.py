import numpy as np
import pytest
import torch

ase = pytest.importorskip("ase")
pytest.importorskip("vesin")
from ase.neighborlist import neighbor_list as ase_neighbor_list  # noqa: E402

from freecg_plugin.neighbors import check_structure, edge_vectors, neighbor_list  # noqa: E402


def _pairs(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(shifts, dtype=int).tolist())))


@pytest.mark.parametrize(
    "cell, n, cutoff",
    [
        (None, 25, 3.0),  # molecule
        (np.diag([7.0, 8.0, 9.0]), 40, 3.0),  # orthorhombic
        (np.array([[4.0, 0, 0], [1.5, 4.2, 0], [0.8, -1.1, 4.5]]), 12, 5.0),  # triclinic, smaller than 2x cutoff
        (np.array([[2.5, 0, 0], [0.7, 2.4, 0], [0.3, 0.5, 2.6]]), 3, 3.2),  # smaller than the cutoff itself
    ],
)
def test_matches_ase(cell, n, cutoff):
    rng = np.random.default_rng(n)
    if cell is None:
        positions = rng.normal(size=(n, 3)) * 2.0
        atoms = ase.Atoms(f"H{n}", positions=positions)
    else:
        positions = rng.uniform(size=(n, 3)) @ cell
        atoms = ase.Atoms(f"H{n}", positions=positions, cell=cell, pbc=True)
    i, j, s = ase_neighbor_list("ijS", atoms, cutoff)
    pos = torch.tensor(positions)
    edge_index, shifts = neighbor_list(pos, cutoff, None if cell is None else torch.tensor(cell), cell is not None)
    assert _pairs(edge_index[1], edge_index[0], shifts) == _pairs(i, j, s)
    vectors = edge_vectors(pos, edge_index, shifts, None if cell is None else torch.tensor(cell))
    assert (vectors.norm(dim=1) < cutoff).all()
    assert len(edge_index[0]) > 0


def test_bad_structures():
    numbers = torch.tensor([1, 1])
    with pytest.raises(ValueError, match="empty structure"):
        check_structure(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="non-finite"):
        check_structure(torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]), numbers)
    with pytest.raises(ValueError, match="non-finite"):
        check_structure(torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0]]), numbers)
    with pytest.raises(ValueError, match="zero volume"):
        check_structure(torch.zeros(2, 3), numbers, torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), True)
    with pytest.raises(ValueError, match="atomic numbers"):
        check_structure(torch.zeros(2, 3), torch.tensor([1]))
    with pytest.raises(ValueError, match="need a cell"):
        neighbor_list(torch.zeros(2, 3), 3.0, None, True)
    with pytest.raises(ValueError, match="cutoff must be positive"):
        neighbor_list(torch.zeros(2, 3), 0.0)
