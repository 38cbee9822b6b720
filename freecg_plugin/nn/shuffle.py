"""Abstract-edge shuffling (FreeCG part 3): roll the channel axis by whole groups."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AbstractEdgeShuffle", "default_shift"]


def default_shift(groups: int, edges_per_group: int) -> int:
    """The reference shift in channels, rounded to whole groups.

    The authors' code shifts by ``1.5 * G`` channels (48 for 32 x 8 = 6 whole groups). For other
    (G, K) that may cut groups, so we take ``round(1.5 * G / K)`` groups (at least 1), modulo G.
    """
    shift_groups = max(1, round(1.5 * groups / edges_per_group)) % groups
    return shift_groups * edges_per_group


class AbstractEdgeShuffle(nn.Module):
    """Output channel ``c`` takes input channel ``(c + shift) mod C``, with ``shift = s * K``.

    Shifting by whole groups keeps every group of K abstract edges together.

    Args:
        groups: G.
        edges_per_group: K.
        shift: in channels, a multiple of K; ``None`` gives :func:`default_shift`; ``0`` is the
            identity (for ablations).

    Shapes:
        ``[N, G, K, D] -> [N, G, K, D]``.
    """

    def __init__(self, groups: int, edges_per_group: int, shift: int | None = None) -> None:
        super().__init__()
        if groups < 1 or edges_per_group < 1:
            raise ValueError(f"groups and edges_per_group must be >= 1, got {groups} and {edges_per_group}")
        if shift is None:
            shift = default_shift(groups, edges_per_group)
        if shift % edges_per_group:
            raise ValueError(f"shuffle shift {shift} is not a multiple of K = {edges_per_group}: it would cut groups of abstract edges")
        self.groups = int(groups)
        self.edges_per_group = int(edges_per_group)
        self.shift = int(shift) % (groups * edges_per_group)
        self.shift_groups = self.shift // edges_per_group

    def extra_repr(self) -> str:
        return f"shift={self.shift} channels ({self.shift_groups} groups)"

    def forward(self, edges: Tensor) -> Tensor:
        if self.shift_groups == 0:
            return edges
        return torch.roll(edges, shifts=-self.shift_groups, dims=1)
