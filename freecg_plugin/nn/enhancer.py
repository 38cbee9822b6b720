"""Attention enhancer (FreeCG part 4): an invariant per-edge term from the sender's features.

``b_ij = Linear(sum_m v_j[m, :] * Y_ij[m])``: the dot product of the sender's equivariant
features with the edge's spherical harmonics, per channel, is rotation-invariant (and
reflection-invariant when each feature irrep has the harmonics' parity (-1)^l). It is added to
attention logits (ViSNet) or to a host's per-edge filter (hosts without attention).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._irreps import Irreps, edge_irreps

__all__ = ["AttentionEnhancer"]


class AttentionEnhancer(nn.Module):
    """Per-edge invariant bias from sender features and edge harmonics.

    Args:
        irreps: irreps of one channel of the features (multiplicity 1 each, e.g. ``"1o+2e"``).
            The edge harmonics carry the same l's.
        channels: C.
        out_features: attention heads, or the host's filter width.
        symmetry: ``"O3"`` requires every feature irrep to have parity (-1)^l, so that the dot
            product with the harmonics is a true scalar; ``"SO3"`` does not check parity.
        bias: add a bias (an edge-independent constant; off by default so the term is zero when
            the features are zero).

    Shapes:
        v_j ``[E, irreps.dim, C]`` (sender features gathered per edge), sh ``[E, irreps.dim]``
        -> ``[E, out_features]``.
    """

    def __init__(self, irreps: Irreps | str, channels: int, out_features: int, symmetry: str = "O3", bias: bool = False) -> None:
        super().__init__()
        self.irreps = edge_irreps(irreps)
        if symmetry not in ("O3", "SO3"):
            raise ValueError(f"symmetry must be 'O3' or 'SO3', got {symmetry!r}")
        if symmetry == "O3":
            odd = [str(ir) for _, ir in self.irreps if ir.p != (-1) ** ir.l]
            if odd:
                raise ValueError(
                    f"enhancer: irreps {odd} do not have the spherical-harmonic parity (-1)^l; their dot "
                    "product with Y_ij would be a pseudo-scalar (use symmetry='SO3' to allow it)"
                )
        self.dim = self.irreps.dim
        self.linear = nn.Linear(channels, out_features, bias=bias)

    def forward(self, v_j: Tensor, sh: Tensor) -> Tensor:
        if v_j.dim() != 3 or v_j.shape[1] != self.dim or sh.dim() != 2 or sh.shape[0] != v_j.shape[0] or sh.shape[1] != self.dim:
            raise ValueError(
                "AttentionEnhancer: expected v_j [E, "
                + str(self.dim)
                + ", C] and sh [E, "
                + str(self.dim)
                + "], got "
                + str(list(v_j.shape))
                + " and "
                + str(list(sh.shape))
            )
        return self.linear(torch.einsum("edc,ed->ec", v_j, sh))
