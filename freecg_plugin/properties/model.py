"""A host (bare or + FreeCG) with one readout per property target.

The host is one of the project's potentials (:mod:`freecg_plugin.training.hosts`) used for its
``features(...) -> (scalar [N, F], vector [N, D, F])`` (ViSNet, PaiNN, SO3net); its energy head
is not used. Each target gets the readout its kind asks for (:data:`~freecg_plugin.properties.qm9.QM9_TARGETS`).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

from torch import Tensor, nn

from ..atomistic import GraphBatch
from .qm9 import QM9_TARGETS, check_targets
from .readouts import AtomwiseReadout, DipoleReadout, SpatialExtentReadout

__all__ = ["PROPERTY_HOSTS", "PropertyModel", "build_property_model", "feature_channels"]

PROPERTY_HOSTS = ("visnet", "painn", "so3net")
"""Hosts whose final per-atom scalar and vector features the readouts take."""


def feature_channels(host: nn.Module) -> int:
    """Channels ``F`` of a host potential's final features."""
    if hasattr(host, "visnet"):
        return int(host.visnet.representation_model.hidden_channels)
    return int(host.representation.n_atom_basis)


class PropertyModel(nn.Module):
    """``{target: [num_graphs]}`` from a host's final features.

    Shapes: numbers ``[N]``, positions ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]``,
    edge_vec ``[E, 3]`` -> ``{name: [num_graphs]}`` in each target's reported unit.
    """

    def __init__(self, host: nn.Module, readouts: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.host = host
        self.readouts = nn.ModuleDict(dict(readouts))

    def forward(
        self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor, num_graphs: int
    ) -> Dict[str, Tensor]:
        scalar, vector = self.host.features(numbers, positions, batch, edge_index, edge_vec)
        vector = vector[:, :3]  # the l = 1 block (hosts put it first)
        return {name: readout(scalar, vector, numbers, positions, batch, num_graphs) for name, readout in self.readouts.items()}

    def predict(self, graph: GraphBatch) -> Dict[str, Tensor]:
        """The targets of a batch of molecules (no periodic cells)."""
        src, dst = graph.edge_index
        edge_vec = graph.positions[src] - graph.positions[dst]
        return self(graph.numbers, graph.positions, graph.batch, graph.edge_index, edge_vec, graph.num_graphs)


def _readout(name: str, channels: int, stats: Tuple[float, float]) -> nn.Module:
    kind = QM9_TARGETS[name].readout
    mean, std = stats
    if kind == "dipole":
        return DipoleReadout(channels)
    if kind == "spatial_extent":
        return SpatialExtentReadout(channels, std=std)
    return AtomwiseReadout(channels, kind, mean=mean, std=std)


def build_property_model(
    host: nn.Module, targets: Sequence[str], stats: Mapping[str, Tuple[float, float]], host_name: Optional[str] = None
) -> PropertyModel:
    """``host`` with a readout per target; ``stats[name] = (mean, std)`` standardise the atom-wise
    outputs (per atom for sums, per molecule for means).

    Raises:
        ValueError: unknown targets, or a host without vector features.
    """
    check_targets(targets)
    if host_name is not None and host_name not in PROPERTY_HOSTS:
        raise ValueError(f"property readouts take the features of {list(PROPERTY_HOSTS)}, not {host_name!r}")
    channels = feature_channels(host)
    return PropertyModel(host, {name: _readout(name, channels, stats[name]) for name in targets})
