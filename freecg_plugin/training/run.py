"""Train and test from a :class:`TrainConfig` (what ``freecg train`` / ``freecg test`` run)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import lightning as L
import torch

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


def _trainer(config: TrainConfig, output: Path, max_epochs: int, logger: bool = True) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(output, name="logs", version=0)] if logger else False
    if logger:
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            import tensorboard  # noqa: F401

            loggers.append(TensorBoardLogger(output, name="tensorboard", version=0))
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
    )


def train(config: TrainConfig, resume: Optional[str] = None, max_epochs: Optional[int] = None) -> Dict[str, float]:
    """Train, keep the best checkpoint on validation loss, then test it; returns test metrics."""
    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    output = Path(config.output)
    train_set, val_set, test_set = load_data(config)
    cutoff = config.model.cutoff
    task = PotentialTask(
        config.to_dict(), float(train_set.energy.mean()), float(train_set.energy.std()), train_set.energy_unit, train_set.elements
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
    results["seconds_per_epoch"] = seconds / done
    save_metrics(results, output / "test_metrics.json")
    plot_learning_curves(output / "logs" / "version_0" / "metrics.csv", output / "learning_curves.png", train_set.energy_unit)
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
    for batch in frame_loader(test_set, cutoff, max(config.optim.batch_size, 8), shuffle=False):
        out = task.predict_batch(batch)
        for key in pred:
            pred[key].append(out[key].detach())
            ref[key].append(batch[key])
    pred = {k: torch.cat(v) for k, v in pred.items()}
    ref = {k: torch.cat(v) for k, v in ref.items()}
    unit = test_set.energy_unit
    values = metrics(pred, ref, unit)
    output = Path(config.output)
    print(metrics_table(values, unit, f"test set: {len(test_set)} frames ({test_set.source}), checkpoint {checkpoint}"), flush=True)
    plot_parity(pred["forces"], ref["forces"], unit, output / "force_parity.png", f"forces, test MAE {values['forces_mae']:.3f} {unit}/Å")
    return values
