"""Frames -> batches for training and evaluation: each structure's neighbour list built once
(:class:`GraphCache`), batches of graphs with the labels a task needs (:func:`graph_loader`),
and the energy / force / stress batches of a potential (:func:`frame_loader`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

import numpy as np
import torch

from ..atomistic import GraphBatch, Structure, concatenate, frame_graph
from .dataset import AtomsData

__all__ = ["EpochShuffle", "FrameCollate", "GraphCache", "GraphCollate", "frame_loader", "graph_loader"]

Labels = Callable[[list, GraphBatch], Dict[str, Any]]
"""``labels(indices, graph) -> {name: tensor}``: what a batch carries beside its graph."""


class GraphCache:
    """Each structure's neighbour list, built the first time the structure is asked for and kept
    (the structures do not change during training): edges as int32, periodic shifts as int8,
    about 11 bytes per edge. Later batches only concatenate. With ``keep=False`` every request
    builds the list again (for data sets whose lists do not fit in memory)."""

    def __init__(self, structures: Sequence[Structure], cutoff: float, source: str = "", keep: bool = True) -> None:
        self.structures, self.cutoff, self.source, self.keep = structures, cutoff, source, keep
        self._graphs: Dict[int, GraphBatch] = {}

    def graph(self, index: int) -> GraphBatch:
        """Structure ``index`` as a batch of one, with its neighbour list (built once)."""
        graph = self._graphs.get(index)
        if graph is None:
            try:
                graph = frame_graph(self.structures[index], self.cutoff)
            except ValueError as err:
                raise ValueError(f"{self.source}: frame {index}: {err}") from None
            graph.positions, graph.cell = graph.positions.float(), graph.cell.float()
            graph.edge_index, graph.shifts = graph.edge_index.int(), graph.shifts.to(torch.int8)
            if self.keep:
                self._graphs[index] = graph
        return graph

    def batch(self, indices) -> GraphBatch:
        """The structures ``indices`` as one batch (float32 positions)."""
        graph = concatenate([self.graph(i) for i in indices])
        graph.edge_index, graph.shifts = graph.edge_index.long(), graph.shifts.float()
        return graph


class GraphCollate:
    """Turns a list of structure indices into ``{"graph": GraphBatch, **labels(indices, graph)}``,
    graphs from a :class:`GraphCache` (``cache_graphs``: whether it keeps them)."""

    def __init__(self, structures: Sequence[Structure], cutoff: float, labels: Labels, source: str = "", cache_graphs: bool = True) -> None:
        self.labels = labels
        self.graphs = GraphCache(structures, cutoff, source, keep=cache_graphs)

    def __call__(self, indices) -> Dict[str, Any]:
        indices = list(indices)
        graph = self.graphs.batch(indices)
        return {"graph": graph, **self.labels(indices, graph)}


class EpochShuffle(torch.utils.data.RandomSampler):
    """The indices ``0..size-1`` in an order that depends on ``(seed, epoch)`` only, so that a run
    resumed at epoch k sees the batches the uninterrupted run saw there (a generator's state is
    not in a checkpoint: re-seeding it once per process would replay epoch 0's order). Lightning
    calls :meth:`set_epoch` before each epoch; without it, each pass is the next epoch. A
    ``RandomSampler``, so that Lightning swaps it for a shuffling ``DistributedSampler`` under
    DDP."""

    def __init__(self, size: int, seed: int) -> None:
        super().__init__(range(size), generator=torch.Generator())
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(2, dtype=np.uint32)
        self.generator.manual_seed(int(state[0]) << 32 | int(state[1]))
        self.epoch += 1
        return super().__iter__()


def graph_loader(collate: GraphCollate, batch_size: int, shuffle: bool, seed: int = 0) -> torch.utils.data.DataLoader:
    """A plain ``DataLoader`` over the structure indices of ``collate`` (Lightning can re-create it
    with a distributed sampler for DDP)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"optim.batch_size must be a positive integer, got {batch_size!r}")
    size = len(collate.graphs.structures)
    sampler = EpochShuffle(size, seed) if shuffle else None
    return torch.utils.data.DataLoader(range(size), batch_size=batch_size, sampler=sampler, collate_fn=collate)


class FrameCollate(GraphCollate):
    """Frame indices -> ``{"graph": GraphBatch, "energy": [B], "forces": [N, 3], "atoms": [B]}``
    and ``"stress": [B, 3, 3]`` when the data has it (float32)."""

    def __init__(self, data: AtomsData, cutoff: float, cache_graphs: bool = True) -> None:
        super().__init__(data.structures, cutoff, self._frame_labels, data.source, cache_graphs)
        self.data = data

    def _frame_labels(self, indices: list, graph: GraphBatch) -> Dict[str, Any]:
        out = {
            "energy": self.data.energy[indices].float(),
            "forces": torch.cat([self.data.forces[i] for i in indices]).float(),
            "atoms": torch.bincount(graph.batch, minlength=graph.num_graphs).float(),
        }
        if self.data.stress is not None:
            out["stress"] = self.data.stress[indices].float()
        return out


def frame_loader(
    data: AtomsData, cutoff: float, batch_size: int, shuffle: bool, seed: int = 0, cache_graphs: bool = True
) -> torch.utils.data.DataLoader:
    """Batches of :class:`FrameCollate` over ``data``."""
    return graph_loader(FrameCollate(data, cutoff, cache_graphs), batch_size, shuffle, seed)
