"""Train and test from a :class:`TrainConfig` (what ``freecg train`` / ``freecg test`` run)."""

from __future__ import annotations

import hashlib
import resource
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Optional, Tuple

import lightning as L
import torch

from ..atomistic import collate
from ..data import AtomsData, load_extxyz, load_npz, load_rmd17_split
from .config import TrainConfig
from .report import metrics, metrics_table, plot_learning_curves, plot_parity, save_metrics
from .task import PotentialTask, frame_loader

__all__ = ["load_data", "test", "train"]


def load_data(config: TrainConfig) -> Tuple[AtomsData, AtomsData, AtomsData]:
    """``(train, val, test)`` as the config says, in the training unit."""
    d = config.data
    if d.kind == "rmd17":
        pool, test_set = load_rmd17_split(d.path, d.molecule, d.split)
    elif d.kind in ("npz", "extxyz"):
        data = load_npz(d.path, d.energy_unit) if d.kind == "npz" else load_extxyz(d.path, d.energy_unit or "eV", d.energy_key)
        pool, test_set = data, None
    else:
        raise ValueError(f"data.kind must be rmd17, npz or extxyz, got {d.kind!r}")
    if d.n_train + d.n_val > len(pool):
        raise ValueError(f"{pool.source}: {d.n_train} train + {d.n_val} val frames asked, {len(pool)} available")
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(d.seed)).tolist()
    train, val = pool.subset(order[: d.n_train]), pool.subset(order[d.n_train : d.n_train + d.n_val])
    if test_set is None:  # one file: the test frames are the rest
        test_set = pool.subset(order[d.n_train + d.n_val :])
    if d.n_test is not None:
        test_set = test_set.subset(range(min(d.n_test, len(test_set))))
    if d.train_unit:
        train, val, test_set = (x.to_unit(d.train_unit) for x in (train, val, test_set))
    return train, val, test_set


def data_fingerprint(*sets: AtomsData) -> str:
    """A hash of the frames (positions and energies, in order) of ``sets``: equal hashes, same data."""
    digest = hashlib.sha256()
    for data in sets:
        for structure, energy in zip(data.structures, data.energy.tolist()):
            digest.update(structure.positions.double().numpy().tobytes())
            digest.update(repr(energy).encode())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def mean_neighbours(data: AtomsData, cutoff: float, frames: int = 100) -> float:
    """Average number of neighbours per atom within ``cutoff`` over the first ``frames`` frames."""
    graph = collate(data.structures[:frames], cutoff)
    return graph.edge_index.shape[1] / max(graph.numbers.shape[0], 1)


def peak_memory_mb() -> float:
    """Peak memory of this process: GPU memory allocated when on CUDA, else resident set size."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _trainer(config: TrainConfig, output: Path, max_epochs: int, logger: bool = True) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    # a new version per invocation: CSVLogger would replace an existing version's metrics on resume
    loggers = [CSVLogger(output, name="logs")] if logger else False
    if logger:
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            import tensorboard  # noqa: F401

            loggers.append(TensorBoardLogger(output, name="tensorboard"))
        except ImportError:
            pass
    checkpoint = ModelCheckpoint(dirpath=output / "checkpoints", filename="best", monitor="val_loss", save_last=True)
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        logger=loggers,
        callbacks=[checkpoint],
        inference_mode=False,  # forces need autograd in validation and test
        gradient_clip_val=config.optim.gradient_clip,
        log_every_n_steps=1,
        deterministic=False,
        num_sanity_val_steps=0,
        max_time=None if config.optim.max_time_s is None else timedelta(seconds=config.optim.max_time_s),
    )


def train(config: TrainConfig, resume: Optional[str] = None, max_epochs: Optional[int] = None) -> Dict[str, float]:
    """Train, keep the best checkpoint on validation loss, then test it; returns test metrics."""
    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    output = Path(config.output)
    train_set, val_set, test_set = load_data(config)
    cutoff = config.model.cutoff
    task = PotentialTask(
        config.to_dict(), float(train_set.energy.mean()), float(train_set.energy.std()), train_set.energy_unit, train_set.elements,
        mean_neighbours(train_set, cutoff),
    )
    loaders = (
        frame_loader(train_set, cutoff, config.optim.batch_size, shuffle=True, seed=config.optim.seed),
        frame_loader(val_set, cutoff, config.optim.batch_size, shuffle=False),
    )
    epochs = max_epochs if max_epochs is not None else config.optim.max_epochs
    trainer = _trainer(config, output, epochs)
    print(f"training {sum(p.numel() for p in task.model.parameters()):,} parameters on {len(train_set)} frames "
          f"({len(val_set)} validation) for {epochs} epochs -> {output}", flush=True)
    start = time.perf_counter()
    trainer.fit(task, *loaders, ckpt_path=resume)
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(output / "checkpoints" / "last.ckpt")  # the end of the run, for --resume
    done = max(trainer.current_epoch - (_checkpoint_epoch(resume) if resume else 0), 1)
    print(f"trained {done} epochs in {seconds:.1f} s ({seconds / done:.2f} s/epoch)", flush=True)
    best = trainer.checkpoint_callback.best_model_path or str(output / "checkpoints" / "last.ckpt")
    results = test(best, config, test_set)
    results.update(
        seconds_per_epoch=seconds / done,
        train_seconds=seconds,
        epochs=done,
        parameters=sum(p.numel() for p in task.model.parameters()),
        peak_memory_mb=peak_memory_mb(),
        data_fingerprint=data_fingerprint(train_set, val_set, test_set),
        seed=config.optim.seed,
        unit=train_set.energy_unit,
    )
    save_metrics(results, output / "test_metrics.json")
    plot_learning_curves(output / "logs", output / "learning_curves.png", train_set.energy_unit)
    return results


def _checkpoint_epoch(checkpoint: str) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"])


def test(checkpoint: str, config: Optional[TrainConfig] = None, test_set: Optional[AtomsData] = None) -> Dict[str, float]:
    """Evaluate a checkpoint on the test frames: print the table, write the force parity plot."""
    task = PotentialTask.load_from_checkpoint(checkpoint, map_location="cpu")
    config = config or task.config
    if test_set is None:
        test_set = load_data(config)[2]
    cutoff = config.model.cutoff
    task.inference_model.eval()
    pred, ref = {"energy": [], "forces": []}, {"energy": [], "forces": []}
    model_seconds = 0.0
    for batch in frame_loader(test_set, cutoff, max(config.optim.batch_size, 8), shuffle=False):
        start = time.perf_counter()
        out = task.predict_batch(batch)
        model_seconds += time.perf_counter() - start
        for key in pred:
            pred[key].append(out[key].detach())
            ref[key].append(batch[key])
    pred = {k: torch.cat(v) for k, v in pred.items()}
    ref = {k: torch.cat(v) for k, v in ref.items()}
    unit = test_set.energy_unit
    values = metrics(pred, ref, unit)
    values["inference_ms_per_structure"] = 1000 * model_seconds / len(test_set)  # energy + forces, graphs given
    output = Path(config.output)
    print(metrics_table(values, unit, f"test set: {len(test_set)} frames ({test_set.source}), checkpoint {checkpoint}"), flush=True)
    plot_parity(pred["forces"], ref["forces"], unit, output / "force_parity.png", f"forces, test MAE {values['forces_mae']:.3f} {unit}/Å")
    return values
