"""Molecular properties from a host's final per-atom features.

Every readout takes the host's invariant features ``scalar [N, F]``, its l = 1 features
``vector [N, 3, F]`` (Cartesian x, y, z; ``None`` for hosts without them), and the molecule
(``numbers [N]``, ``positions [N, 3]`` in Å, ``batch [N]``, ``num_graphs``), and returns one
value per molecule:

* :class:`AtomwiseReadout`: ``sum_i y_i`` (extensive: U0, U, H, G, ZPVE, Cv, alpha) or
  ``mean_i y_i`` (intensive: HOMO, LUMO, gap), ``y_i`` an MLP of the scalars;
* :class:`DipoleReadout`: ``mu = |sum_i q_i (r_i - r_c) + sum_i mu_i|``, with charges ``q_i``
  shifted to sum to the molecule's charge and atomic dipoles ``mu_i`` from the vectors;
* :class:`SpatialExtentReadout`: ``<R^2> = sum_i q_i |r_i - r_c|^2 + sum_i s_i``.

``r_c`` is the centre of mass, so every output is translation invariant, and the dipole vector
(returned alongside its norm) rotates with the molecule.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["AtomwiseReadout", "DipoleReadout", "GatedEquivariantBlock", "SpatialExtentReadout", "centre_of_mass"]


def _masses() -> Tensor:
    from ase.data import atomic_masses

    return torch.tensor(atomic_masses, dtype=torch.float64)


def _sum(values: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """Per-molecule sums of per-atom ``values [N, ...]`` -> ``[num_graphs, ...]``."""
    return values.new_zeros((num_graphs,) + values.shape[1:]).index_add(0, batch, values)


def centre_of_mass(positions: Tensor, masses: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """``[num_graphs, 3]``: the mass-weighted mean position of each molecule."""
    weights = masses.to(positions.dtype).unsqueeze(-1)
    return _sum(weights * positions, batch, num_graphs) / _sum(weights, batch, num_graphs)


def _mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class GatedEquivariantBlock(nn.Module):
    """Scalars and vectors in, scalars and vectors out, equivariantly (the gated block of PaiNN
    and ViSNet's output heads): the vectors are mixed over channels, their norms join the scalars
    in an MLP whose output gives new scalars and one gate per output vector channel.

    Shapes: ``scalar [N, F_in]``, ``vector [N, 3, F_in]`` -> ``[N, F_out]``, ``[N, 3, F_out]``.
    """

    def __init__(self, n_in: int, n_out: int, hidden: Optional[int] = None) -> None:
        super().__init__()
        hidden = hidden or n_in
        self.mix = nn.Linear(n_in, 2 * n_out, bias=False)  # no bias: a bias on vectors would break equivariance
        self.mlp = _mlp(n_in + n_out, 2 * n_out, hidden)
        self.n_out = n_out

    def forward(self, scalar: Tensor, vector: Tensor) -> Tuple[Tensor, Tensor]:
        mixed = self.mix(vector)
        keep, norm_of = mixed[..., : self.n_out], mixed[..., self.n_out :]
        out = self.mlp(torch.cat([scalar, norm_of.norm(dim=1)], dim=-1))
        return out[:, : self.n_out], out[:, self.n_out :].unsqueeze(1) * keep


class AtomwiseReadout(nn.Module):
    """``sum_i y_i`` or ``mean_i y_i`` per molecule, ``y_i = MLP(scalar_i)``; with per-target
    standardisation ``y = std * out + mean`` (``mean`` per atom for sums).

    Shapes: ``scalar [N, F]``, ``batch [N]`` -> ``[num_graphs]``.
    """

    def __init__(self, n_in: int, aggregation: str = "sum", hidden: Optional[int] = None, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"aggregation must be sum or mean, got {aggregation!r}")
        self.aggregation = aggregation
        self.mlp = _mlp(n_in, 1, hidden or n_in)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(
        self, scalar: Tensor, vector: Optional[Tensor], numbers: Tensor, positions: Tensor, batch: Tensor, num_graphs: int
    ) -> Tensor:
        atomic = self.mlp(scalar).squeeze(-1) * self.std + self.mean
        total = _sum(atomic, batch, num_graphs)
        if self.aggregation == "mean":
            total = total / _sum(torch.ones_like(atomic), batch, num_graphs)
        return total


class DipoleReadout(nn.Module):
    """Dipole moment from atomic charges and, with vector features, atomic dipoles.

    ``q_i``: an MLP of the scalars, shifted per molecule so that ``sum_i q_i`` equals the total
    charge (0 unless given). ``mu_i``: the vector output of a gated equivariant block (omitted
    when the host has no vector features). Positions in Å; charges in e; the result in debye
    (``1 e Å = 4.803 D``).

    Shapes: -> ``(norm [num_graphs], vector [num_graphs, 3])``.
    """

    E_ANGSTROM_IN_DEBYE = 4.80320471

    def __init__(self, n_in: int, vectors: bool = True, hidden: Optional[int] = None) -> None:
        super().__init__()
        hidden = hidden or n_in
        self.charge = _mlp(n_in, 1, hidden)
        self.atomic_dipole = GatedEquivariantBlock(n_in, 1, hidden) if vectors else None
        self.register_buffer("masses", _masses(), persistent=False)

    def dipole_vector(
        self,
        scalar: Tensor,
        vector: Optional[Tensor],
        numbers: Tensor,
        positions: Tensor,
        batch: Tensor,
        num_graphs: int,
        total_charge: Optional[Tensor] = None,
    ) -> Tensor:
        """``[num_graphs, 3]`` in debye."""
        q = self.charge(scalar).squeeze(-1)
        atoms = _sum(torch.ones_like(q), batch, num_graphs)
        target = total_charge.to(q.dtype) if total_charge is not None else torch.zeros_like(atoms)
        q = q + ((target - _sum(q, batch, num_graphs)) / atoms)[batch]
        centre = centre_of_mass(positions, self.masses[numbers], batch, num_graphs)
        moment = _sum(q.unsqueeze(-1) * (positions - centre[batch]), batch, num_graphs)
        if self.atomic_dipole is not None:
            if vector is None:
                raise ValueError("DipoleReadout(vectors=True) needs the host's vector (l = 1) features")
            moment = moment + _sum(self.atomic_dipole(scalar, vector)[1].squeeze(-1), batch, num_graphs)
        return moment * self.E_ANGSTROM_IN_DEBYE

    def forward(
        self, scalar: Tensor, vector: Optional[Tensor], numbers: Tensor, positions: Tensor, batch: Tensor, num_graphs: int
    ) -> Tensor:
        return self.dipole_vector(scalar, vector, numbers, positions, batch, num_graphs).norm(dim=-1)


class SpatialExtentReadout(nn.Module):
    """Electronic spatial extent ``<R^2> = sum_i q_i |r_i - r_c|^2 + sum_i s_i`` in bohr^2, with
    ``q_i`` (electron counts, kept positive by a softplus) and ``s_i`` MLPs of the scalars.

    Shapes: -> ``[num_graphs]``.
    """

    BOHR_IN_ANGSTROM = 0.529177210903

    def __init__(self, n_in: int, hidden: Optional[int] = None, std: float = 1.0) -> None:
        super().__init__()
        self.mlp = _mlp(n_in, 2, hidden or n_in)
        self.register_buffer("masses", _masses(), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(
        self, scalar: Tensor, vector: Optional[Tensor], numbers: Tensor, positions: Tensor, batch: Tensor, num_graphs: int
    ) -> Tensor:
        q, s = self.mlp(scalar).unbind(-1)
        centre = centre_of_mass(positions, self.masses[numbers], batch, num_graphs)
        r2 = (positions - centre[batch]).square().sum(-1) / self.BOHR_IN_ANGSTROM**2
        return _sum(nn.functional.softplus(q) * r2 + s * self.std, batch, num_graphs)
