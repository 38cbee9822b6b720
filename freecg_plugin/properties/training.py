"""``freecg train`` with ``task: properties``: a host (bare or + FreeCG) and property readouts
trained on QM9-format molecules, with the project's recipe (:class:`~freecg_plugin.training.task.RecipeTask`).

Loss: the mean over targets of the squared error divided by the target's variance over the
training molecules, so that targets in different units weigh alike. Reported per target: MAE and
RMSE in the target's unit, and a parity plot.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import lightning as L
import torch
from torch import Tensor

from ..training.config import DataConfig, TrainConfig
from ..training.hosts import build_host
from ..training.report import plot_learning_curves, save_metrics
from ..training.run import mean_neighbours, peak_memory_mb, trainer_for
from ..training.task import GraphCache, RecipeTask
from .model import build_property_model
from .qm9 import QM9_TARGETS, PropertyData, load_qm9

__all__ = ["PropertyTask", "load_property_data", "property_loader", "evaluate_properties", "target_statistics", "train_properties"]


def _source(d: DataConfig) -> Path:
    if d.dataset is None:
        return Path(d.train)
    from ..data import dataset, locate

    entry = dataset(d.dataset)
    if entry.format != "qm9-npz":
        raise ValueError(f"dataset {d.dataset} ({entry.format}) holds no molecular properties; use qm9/subset10k or qm9/qm9pack")
    return locate(d.dataset) / entry.files[0].path


def load_property_data(d: DataConfig, targets: Sequence[str]) -> Tuple[PropertyData, PropertyData, PropertyData]:
    """``(train, val, test)`` molecules, drawn with seed ``d.seed``: ``n_train`` (default: all
    that are left), ``n_val`` (or ``val_fraction``), ``n_test`` (default: the rest).

    Raises:
        ValueError: unknown targets or elements, or a set that would be empty; before training.
    """
    data = load_qm9(_source(d), targets)
    n_val = d.n_val if d.n_val is not None else max(1, round((d.val_fraction or 0.1) * len(data)))
    n_test = d.n_test if d.n_test is not None else len(data) - n_val - (d.n_train or 0)
    n_train = d.n_train if d.n_train is not None else len(data) - n_val - n_test
    if n_train < 1 or n_test < 1 or n_train + n_val + n_test > len(data):
        raise ValueError(f"{data.source}: {n_train} train + {n_val} validation + {n_test} test molecules asked, {len(data)} available")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(d.seed)).tolist()
    return (
        data.subset(order[:n_train]),
        data.subset(order[n_train : n_train + n_val]),
        data.subset(order[n_train + n_val : n_train + n_val + n_test]),
    )


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


class _Collate:
    def __init__(self, data: PropertyData, cutoff: float, cache_graphs: bool) -> None:
        self.data = data
        self.graphs = GraphCache(data.structures, cutoff, data.source, keep=cache_graphs)

    def __call__(self, indices) -> Dict[str, Any]:
        return {"graph": self.graphs.batch(indices), "targets": {k: v[list(indices)].float() for k, v in self.data.targets.items()}}


def property_loader(
    data: PropertyData, cutoff: float, batch_size: int, shuffle: bool, seed: int = 0, cache_graphs: bool = True
) -> torch.utils.data.DataLoader:
    """Batches ``{"graph": GraphBatch, "targets": {name: [B]}}`` (neighbour lists built once unless
    ``cache_graphs`` is false)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        range(len(data)), batch_size=batch_size, shuffle=shuffle, collate_fn=_Collate(data, cutoff, cache_graphs), generator=generator
    )


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
        m = self.config.model
        host = build_host(
            m.host, m.args, m.cutoff, m.freecg, m.freecg_layers, self.elements, 0.0, 1.0, avg_num_neighbors, self.config.optim.seed
        )
        self.model = build_property_model(host, self.targets, {k: (v[0], v[1]) for k, v in stats.items()}, m.host)
        self.scales = {k: float(v[2]) for k, v in stats.items()}
        self._setup_ema()

    def predict_batch(self, batch: Dict[str, Any], training: bool = False) -> Dict[str, Tensor]:
        model = self.model if training else self.inference_model
        return model.predict(batch["graph"])

    def _losses(self, batch: Dict[str, Any], out: Dict[str, Tensor], stage: str) -> Tensor:
        size = batch["graph"].num_graphs
        losses = []
        for name in self.targets:
            error = out[name] - batch["targets"][name]
            losses.append((error / self.scales[name]).square().mean())
            self.log(f"{stage}_{name}_mae", error.abs().mean(), batch_size=size, on_epoch=True, on_step=False, sync_dist=True)
        loss = torch.stack(losses).mean()
        self.log(f"{stage}_loss", loss, batch_size=size, prog_bar=stage != "train", on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._losses(batch, self.predict_batch(batch, training=True), "train")

    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            self._losses(batch, self.predict_batch(batch), "val")


def _fingerprint(*sets: PropertyData) -> str:
    """Which molecules went where (QM9 numbers of each set): equal for runs that saw the same split."""
    import hashlib

    return hashlib.sha256(repr([s.index.tolist() for s in sets]).encode()).hexdigest()[:16]


def train_properties(config: TrainConfig, resume: Optional[str] = None, max_epochs: Optional[int] = None) -> Dict[str, Any]:
    """Train the property model ``config`` describes, keep the best checkpoint on validation
    loss, test it; returns (and writes to ``test_metrics.json``) MAE/RMSE per target."""
    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    output = Path(config.output)
    train_set, val_set, test_set = load_property_data(config.data, config.targets)
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"{resume}: no such checkpoint to resume from")
    elements = sorted({int(z) for s in train_set.structures for z in s.numbers.tolist()})
    cutoff = config.model.cutoff
    task = PropertyTask(config.to_dict(), target_statistics(train_set), elements, mean_neighbours(train_set, cutoff))
    loaders = (
        property_loader(
            train_set, cutoff, config.optim.batch_size, shuffle=True, seed=config.optim.seed, cache_graphs=config.data.cache_graphs
        ),
        property_loader(val_set, cutoff, config.optim.batch_size, shuffle=False, cache_graphs=config.data.cache_graphs),
    )
    epochs = max_epochs if max_epochs is not None else config.optim.max_epochs
    trainer = trainer_for(config, output, epochs)
    print(
        f"training {sum(p.numel() for p in task.model.parameters()):,} parameters for {config.targets} on {len(train_set)} molecules "
        f"({len(val_set)} validation, {len(test_set)} test) for {epochs} epochs -> {output}",
        flush=True,
    )
    start = time.perf_counter()
    trainer.fit(task, *loaders, ckpt_path=resume)
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(output / "checkpoints" / "last.ckpt")
    if not trainer.is_global_zero:
        return {}
    best = trainer.checkpoint_callback.best_model_path or str(output / "checkpoints" / "last.ckpt")
    results = evaluate_properties(best, test_set, output)
    done = max(trainer.current_epoch, 1)
    results.update(
        train_seconds=seconds,
        seconds_per_epoch=seconds / done,
        epochs=done,
        parameters=sum(p.numel() for p in task.model.parameters()),
        peak_memory_mb=peak_memory_mb(),
        seed=config.optim.seed,
        data_fingerprint=_fingerprint(train_set, val_set, test_set),
    )
    save_metrics(results, output / "test_metrics.json")
    plot_learning_curves(output / "logs", output / "learning_curves.png", "standardised")
    return results


def evaluate_properties(checkpoint: str, data: PropertyData, output: Optional[Path] = None, batch_size: int = 32) -> Dict[str, Any]:
    """MAE and RMSE per target of a property checkpoint on ``data``; prints the table and, with
    ``output``, writes a parity plot per target (``parity_<target>.png``)."""
    task = PropertyTask.load_from_checkpoint(checkpoint, map_location="cpu")
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
        rows.append(f"| {name} | {QM9_TARGETS[name].unit} | {mae:.4g} | {rmse:.4g} |")
        if output is not None:
            _parity(p, r, name, Path(output) / f"parity_{name}.png")
    print(f"test on {len(data)} molecules ({checkpoint})\n\n" + "\n".join(rows), flush=True)
    return results


def _parity(pred: Tensor, ref: Tensor, name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unit = QM9_TARGETS[name].unit
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(ref.numpy(), pred.numpy(), s=3, alpha=0.5)
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(
        xlabel=f"reference {name} ({unit})",
        ylabel=f"predicted ({unit})",
        title=f"{name}: MAE {float((pred - ref).abs().mean()):.3g} {unit}",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
