"""Abstract-edge builder (FreeCG part 1).

A host's aggregated message ``A_i = sum_j m_ij`` does not depend on the order of atom i's
neighbours, so its C channels can be read as C "abstract edges" of atom i and cut into G groups
of K consecutive channels (channel ``c = K * g + k``), each carrying one copy of every edge irrep.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._irreps import Irreps, edge_irreps

__all__ = ["AbstractEdgeBuilder", "split_channels"]


def split_channels(channels: int, groups: int, edges_per_group: int | None = None) -> int:
    """Check ``G * K = channels`` and return K.

    Raises:
        ValueError: if the channels cannot be cut into ``groups`` whole groups.
    """
    if channels < 1 or groups < 1:
        raise ValueError(f"channels and groups must be >= 1, got {channels} and {groups}")
    if edges_per_group is None:
        if channels % groups:
            raise ValueError(f"G * K != channels: {channels} channels cannot be cut into {groups} equal groups")
        return channels // groups
    if groups * edges_per_group != channels:
        raise ValueError(f"G * K != channels: {groups} x {edges_per_group} != {channels}")
    return edges_per_group


class AbstractEdgeBuilder(nn.Module):
    """Cut aggregated equivariant messages into grouped abstract edges.

    Args:
        irreps: irreps of one channel, multiplicity 1 each (e.g. ``"1o+2e"``, any lmax >= 1,
            with or without parity).
        channels: C, the host's channel count.
        groups: G. ``edges_per_group`` (K) is ``C / G`` unless given; ``G * K`` must equal C.

    Shapes:
        ``forward``: messages ``[N, irreps.dim, C]`` -> abstract edges ``[N, G, K, irreps.dim]``.
        ``merge``: the inverse, ``[N, G, K, irreps.dim]`` -> ``[N, irreps.dim, C]``.
        ``from_mul_ir`` / ``to_mul_ir``: the same for e3nn's layout of ``C x irreps``
        (``[N, C * irreps.dim]``, one ``[C, 2l+1]`` block per irrep), used by NequIP.
    """

    def __init__(self, irreps: Irreps | str, channels: int, groups: int, edges_per_group: int | None = None) -> None:
        super().__init__()
        self.irreps = edge_irreps(irreps)
        self.edges_per_group = split_channels(channels, groups, edges_per_group)
        self.channels = int(channels)
        self.groups = int(groups)
        self.dim = self.irreps.dim
        self.block_sizes = [self.channels * ir.dim for _, ir in self.irreps]
        self.irrep_dims = [ir.dim for _, ir in self.irreps]

    def extra_repr(self) -> str:
        return f"irreps={self.irreps}, channels={self.channels}, groups={self.groups}, edges_per_group={self.edges_per_group}"

    def forward(self, messages: Tensor) -> Tensor:
        if messages.dim() != 3 or messages.shape[1] != self.dim or messages.shape[2] != self.channels:
            raise ValueError(
                "AbstractEdgeBuilder: expected messages [N, "
                + str(self.dim)
                + ", "
                + str(self.channels)
                + "] (irreps x channels), got "
                + str(list(messages.shape))
            )
        n = messages.shape[0]
        return messages.reshape(n, self.dim, self.groups, self.edges_per_group).permute(0, 2, 3, 1)

    def merge(self, edges: Tensor) -> Tensor:
        if edges.dim() != 4 or list(edges.shape[1:]) != [self.groups, self.edges_per_group, self.dim]:
            raise ValueError(
                "AbstractEdgeBuilder.merge: expected edges [N, "
                + str(self.groups)
                + ", "
                + str(self.edges_per_group)
                + ", "
                + str(self.dim)
                + "], got "
                + str(list(edges.shape))
            )
        return edges.permute(0, 3, 1, 2).reshape(edges.shape[0], self.dim, self.channels)

    def from_mul_ir(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.channels * self.dim:
            raise ValueError(
                "AbstractEdgeBuilder.from_mul_ir: expected [N, "
                + str(self.channels * self.dim)
                + "] ("
                + str(self.channels)
                + "x("
                + str(self.irreps)
                + ")), got "
                + str(list(features.shape))
            )
        n = features.shape[0]
        blocks = torch.split(features, self.block_sizes, dim=1)
        per_channel = torch.cat([b.reshape(n, self.channels, d) for b, d in zip(blocks, self.irrep_dims)], dim=2)
        return per_channel.reshape(n, self.groups, self.edges_per_group, self.dim)

    def to_mul_ir(self, edges: Tensor) -> Tensor:
        n = edges.shape[0]
        per_channel = edges.reshape(n, self.channels, self.dim)
        blocks = torch.split(per_channel, self.irrep_dims, dim=2)
        return torch.cat([b.reshape(n, -1) for b in blocks], dim=1)
