"""The potential task: energies and forces (and stress) of a host (+ FreeCG), trained with the
shared recipe (:class:`~freecg_plugin.training.recipe.RecipeTask`) and tested on the test frames."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from ..atomistic import evaluate, mean_neighbours
from ..checkpoint import load_trained_model
from ..configs.train import TrainConfig
from ..data import AtomsData
from ..data.loaders import frame_loader
from ..data.splits import atom_energies, fingerprint, load_data, reference_offsets
from ..evaluation import evaluate_model, metrics, metrics_table, parity_plot, predict, torch_device
from ..hosts import HostStatistics, build_potential
from .job import Job
from .recipe import RecipeTask

__all__ = ["PotentialTask", "prepare_potential", "test"]


class PotentialTask(RecipeTask):
    """Energy + force MSE (weights from the config), with the shared recipe.

    Args:
        config: the training config as a mapping.
        energy_mean, energy_std: of the training energies (after reference energies).
        energy_unit: of the training data.
        elements: atomic numbers of the training frames.
        avg_num_neighbors: for hosts that normalise by it.
        atom_energies: per-element reference energies ``{Z: e}`` or ``None``.
    """

    def __init__(
        self,
        config: Dict[str, Any],
        energy_mean: float = 0.0,
        energy_std: float = 1.0,
        energy_unit: str = "eV",
        elements: Optional[list] = None,
        avg_num_neighbors: float = 10.0,
        atom_energies: Optional[Dict[int, float]] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.energy_unit = energy_unit
        self.elements = sorted(int(z) for z in elements) if elements is not None else None
        self.config = TrainConfig.from_dict(config)
        statistics = HostStatistics(self.elements or [], energy_mean, energy_std, avg_num_neighbors, self.config.optim.seed)
        self.model = build_potential(self.config.model, statistics, atom_energies)
        self._setup_ema()

    def predict_batch(self, batch: Dict[str, Any], training: bool = False, stress: bool = False) -> Dict[str, Tensor]:
        model = self.model if training else self.inference_model
        with torch.enable_grad():
            return evaluate(model, batch["graph"], forces=True, stress=stress or self.trains_stress, training=training)

    @property
    def trains_stress(self) -> bool:
        return self.config.optim.stress_weight > 0

    def _losses(self, batch: Dict[str, Any], out: Dict[str, Tensor], stage: str) -> Tensor:
        optim = self.config.optim
        de, df = out["energy"] - batch["energy"], out["forces"] - batch["forces"]
        de_loss = de / batch["atoms"] if optim.energy_loss == "per_atom" else de
        loss = optim.energy_weight * de_loss.square().mean() + optim.forces_weight * df.square().mean()
        size = len(batch["energy"])
        log = dict(batch_size=size, on_epoch=True, on_step=False, sync_dist=True)
        if self.trains_stress:
            ds = out["stress"] - batch["stress"]
            loss = loss + optim.stress_weight * ds.square().mean()
            self.log(f"{stage}_stress_mae", ds.abs().mean(), **log)
        self.log(f"{stage}_loss", loss, prog_bar=stage != "train", **log)
        self.log(f"{stage}_energy_mae", de.abs().mean(), **log)
        self.log(f"{stage}_forces_mae", df.abs().mean(), prog_bar=stage == "val", **log)
        return loss

    def training_step(self, batch, batch_idx):
        return self._losses(batch, self.predict_batch(batch, training=True), "train")

    def validation_step(self, batch, batch_idx):
        self._losses(batch, self.predict_batch(batch), "val")


def _check_targets(config: TrainConfig, train_set: AtomsData) -> None:
    """Stress training needs stress labels on bulk (fully periodic) frames: checked before training."""
    if config.optim.stress_weight > 0:
        if train_set.stress is None:
            raise ValueError(f"{train_set.source}: optim.stress_weight > 0 but the frames have no stress (data.keys.stress)")
        if not all(s.fully_periodic for s in train_set.structures):
            raise ValueError(f"{train_set.source}: stress training needs fully periodic frames")


def prepare_potential(config: TrainConfig) -> Job:
    """The frames (checked), the task and its loaders for ``task: potential``."""
    train_set, val_set, test_set = load_data(config.data)
    _check_targets(config, train_set)
    if config.optim.energy_loss == "auto":
        config.optim.energy_loss = "per_atom" if len(set(train_set.atom_counts.tolist())) > 1 else "total"
    references = atom_energies(config.data, train_set)
    residual = train_set.energy
    if references:
        residual = residual - reference_offsets(train_set, references)
        listed = ", ".join(f"Z={z}: {e:.4f}" for z, e in references.items())
        print(f"reference energies per element ({train_set.energy_unit}): {listed}", flush=True)
    std = float(residual.std()) if len(residual) > 1 and float(residual.std()) > 0 else 1.0
    cutoff, optim, cache = config.model.cutoff, config.optim, config.data.cache_graphs
    task = PotentialTask(
        config.to_dict(),
        float(residual.mean()),
        std,
        train_set.energy_unit,
        train_set.elements,
        mean_neighbours(train_set.structures, cutoff),
        references,
    )
    return Job(
        task=task,
        train_loader=frame_loader(train_set, cutoff, optim.batch_size, shuffle=True, seed=optim.seed, cache_graphs=cache),
        val_loader=frame_loader(val_set, cutoff, optim.batch_size, shuffle=False, cache_graphs=cache),
        what=f"on {len(train_set)} frames ({len(val_set)} validation, {len(test_set)} test)",
        test=lambda checkpoint: test(checkpoint, config, test_set),
        record=dict(
            data_fingerprint=fingerprint(*((s.structures, s.energy.tolist()) for s in (train_set, val_set, test_set))),
            unit=train_set.energy_unit,
        ),
        curve_unit=train_set.energy_unit,
        evaluate_weights=lambda state: _errors_with(task, state, {"val": val_set, "test": test_set}, cutoff, max(optim.batch_size, 8)),
    )


def _errors_with(
    task: PotentialTask, state: Dict[str, Any], sets: Dict[str, AtomsData], cutoff: float, batch_size: int
) -> Dict[str, float]:
    """Energy and force MAE of the task's tested model with the weights ``state`` on each set
    (``val_forces_mae``, ``test_energy_mae``...), on the CPU."""
    model = copy.deepcopy(task.inference_model).cpu()
    model.load_state_dict(state)
    model.eval()
    out = {}
    for name, data in sets.items():
        pred, ref, _ = predict(model, data, cutoff, batch_size, torch.device("cpu"))
        values = metrics(pred, ref, data.energy_unit)
        out.update({f"{name}_{key}": values[key] for key in ("energy_mae", "forces_mae", "forces_rmse")})
    return out


def test(checkpoint: str, config: Optional[TrainConfig] = None, test_set: Optional[AtomsData] = None) -> Dict[str, float]:
    """Evaluate a potential checkpoint on the test frames, on the training device: print the
    table, write the force parity plot into the config's output folder."""
    trained = load_trained_model(checkpoint)
    config = config or trained.config
    if test_set is None:
        test_set = load_data(config.data)[2]
    values, pred, ref = evaluate_model(trained, test_set, torch_device(config.accelerator), max(config.optim.batch_size, 8))
    unit = test_set.energy_unit
    print(metrics_table(values, unit, f"test set: {len(test_set)} frames ({test_set.source}), checkpoint {checkpoint}"), flush=True)
    title = f"forces, test MAE {values['forces_mae']:.3f} {unit}/Å"
    parity_plot(pred["forces"], ref["forces"], unit, Path(config.output) / "force_parity.png", title)
    return values
