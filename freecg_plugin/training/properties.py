"""The property task (``task: properties``): a host (bare or + FreeCG) with property readouts
(:mod:`freecg_plugin.properties`) trained on QM9-format molecules with the shared recipe.

Loss: the mean over targets of the squared error divided by the target's variance over the
training molecules, so that targets in different units weigh alike. Reported per target: MAE and
RMSE in the target's unit, and a parity plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from ..atomistic import GraphBatch, mean_neighbours
from ..checkpoint import read_checkpoint
from ..configs.train import TrainConfig
from ..data.loaders import GraphCollate, graph_loader
from ..data.splits import fingerprint
from ..hosts import HostStatistics, build_host
from ..plots import plot_parity
from ..properties.data import load_property_data
from ..properties.model import build_property_model
from ..properties.qm9 import QM9_TARGETS, PropertyData
from .job import Job
from .recipe import RecipeTask

__all__ = ["PropertyTask", "evaluate_properties", "prepare_properties", "property_loader", "target_statistics"]


def target_statistics(data: PropertyData) -> Dict[str, List[float]]:
    """Per target ``[mean, std, scale]``: ``mean``/``std`` standardise the readout (per atom for
    atom-wise sums), ``scale`` (the target's std over molecules) normalises its loss."""
    atoms = torch.tensor([len(s.numbers) for s in data.structures], dtype=torch.float64)
    stats = {}
    for name, values in data.targets.items():
        per = values / atoms if QM9_TARGETS[name].readout in ("sum", "spatial_extent") else values
        std = float(per.std()) if len(per) > 1 and float(per.std()) > 0 else 1.0
        scale = float(values.std()) if len(values) > 1 and float(values.std()) > 0 else 1.0
        stats[name] = [float(per.mean()), std, scale]
    return stats


def property_loader(
    data: PropertyData, cutoff: float, batch_size: int, shuffle: bool, seed: int = 0, cache_graphs: bool = True
) -> torch.utils.data.DataLoader:
    """Batches ``{"graph": GraphBatch, "targets": {name: [B]}}`` (neighbour lists built once unless
    ``cache_graphs`` is false)."""

    def labels(indices: list, graph: GraphBatch) -> Dict[str, Any]:
        return {"targets": {k: v[indices].float() for k, v in data.targets.items()}}

    return graph_loader(GraphCollate(data.structures, cutoff, labels, data.source, cache_graphs), batch_size, shuffle, seed)


class PropertyTask(RecipeTask):
    """Property readouts on a host, with the shared recipe.

    Args:
        config: the training config (``task: properties``, ``targets``).
        stats: :func:`target_statistics` of the training molecules.
        elements: atomic numbers of the training molecules.
        avg_num_neighbors: for hosts that normalise by it.
    """

    def __init__(
        self, config: Dict[str, Any], stats: Mapping[str, Sequence[float]], elements: Sequence[int], avg_num_neighbors: float = 10.0
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = TrainConfig.from_dict(config)
        self.targets = list(self.config.targets)
        self.elements = sorted(int(z) for z in elements)
        host = build_host(self.config.model, HostStatistics(self.elements, 0.0, 1.0, avg_num_neighbors, self.config.optim.seed))
        self.model = build_property_model(host, self.targets, {k: (v[0], v[1]) for k, v in stats.items()}, self.config.model.host)
        self.scales = {k: float(v[2]) for k, v in stats.items()}
        self._setup_ema()

    def predict_batch(self, batch: Dict[str, Any], training: bool = False) -> Dict[str, Tensor]:
        model = self.model if training else self.inference_model
        return model.predict(batch["graph"])

    def _losses(self, batch: Dict[str, Any], out: Dict[str, Tensor], stage: str) -> Tensor:
        log = dict(batch_size=batch["graph"].num_graphs, on_epoch=True, on_step=False, sync_dist=True)
        losses = []
        for name in self.targets:
            error = out[name] - batch["targets"][name]
            losses.append((error / self.scales[name]).square().mean())
            self.log(f"{stage}_{name}_mae", error.abs().mean(), **log)
        loss = torch.stack(losses).mean()
        self.log(f"{stage}_loss", loss, prog_bar=stage != "train", **log)
        return loss

    def training_step(self, batch, batch_idx):
        return self._losses(batch, self.predict_batch(batch, training=True), "train")

    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            self._losses(batch, self.predict_batch(batch), "val")


def prepare_properties(config: TrainConfig) -> Job:
    """The molecules (checked), the task and its loaders for ``task: properties``."""
    train_set, val_set, test_set = load_property_data(config.data, config.targets)
    elements = sorted({int(z) for s in train_set.structures for z in s.numbers.tolist()})
    cutoff, optim, cache = config.model.cutoff, config.optim, config.data.cache_graphs
    task = PropertyTask(config.to_dict(), target_statistics(train_set), elements, mean_neighbours(train_set.structures, cutoff))
    return Job(
        task=task,
        train_loader=property_loader(train_set, cutoff, optim.batch_size, shuffle=True, seed=optim.seed, cache_graphs=cache),
        val_loader=property_loader(val_set, cutoff, optim.batch_size, shuffle=False, cache_graphs=cache),
        what=f"for {config.targets} on {len(train_set)} molecules ({len(val_set)} validation, {len(test_set)} test)",
        test=lambda checkpoint: evaluate_properties(checkpoint, test_set, Path(config.output)),
        record=dict(data_fingerprint=fingerprint(*((s.structures, s.index.tolist()) for s in (train_set, val_set, test_set)))),
        curve_unit="standardised",
    )


def evaluate_properties(checkpoint: str, data: PropertyData, output: Optional[Path] = None, batch_size: int = 32) -> Dict[str, Any]:
    """MAE and RMSE per target of a property checkpoint on ``data``; prints the table and, with
    ``output``, writes a parity plot per target (``parity_<target>.png``)."""
    read_checkpoint(checkpoint)  # one-line errors, and nothing unpickled
    task = PropertyTask.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    task.inference_model.eval()
    pred: Dict[str, List[Tensor]] = {name: [] for name in task.targets}
    ref: Dict[str, List[Tensor]] = {name: [] for name in task.targets}
    with torch.no_grad():
        for batch in property_loader(data, task.config.model.cutoff, batch_size, shuffle=False):
            out = task.predict_batch(batch)
            for name in task.targets:
                pred[name].append(out[name].double())
                ref[name].append(batch["targets"][name].double())
    results: Dict[str, Any] = {"molecules": len(data)}
    rows = ["| target | unit | MAE | RMSE |", "|---|---|---|---|"]
    for name in task.targets:
        p, r = torch.cat(pred[name]), torch.cat(ref[name])
        mae, rmse = float((p - r).abs().mean()), float((p - r).square().mean().sqrt())
        results[f"{name}_mae"], results[f"{name}_rmse"] = mae, rmse
        unit = QM9_TARGETS[name].unit
        rows.append(f"| {name} | {unit} | {mae:.4g} | {rmse:.4g} |")
        if output is not None:
            title = f"{name}: MAE {mae:.3g} {unit}"
            plot_parity(p, r, Path(output) / f"parity_{name}.png", title, f"reference {name} ({unit})", f"predicted ({unit})", size=4)
    print(f"test on {len(data)} molecules ({checkpoint})\n\n" + "\n".join(rows), flush=True)
    return results
