"""Train and test from a :class:`TrainConfig` (what ``freecg train`` / ``freecg test`` run)."""

from __future__ import annotations

import hashlib
import resource
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Optional

import lightning as L
import torch

from ..atomistic import collate
from ..data import AtomsData
from .config import TrainConfig
from .data import atom_energies, load_data, reference_offsets
from .report import metrics, metrics_table, plot_learning_curves, plot_parity, save_metrics, write_atomic
from .task import PotentialTask, check_elements, frame_loader, load_task, torch_device

__all__ = ["evaluate_file", "load_data", "peak_memory_mb", "test", "train", "trainer_for"]


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


def trainer_for(config: TrainConfig, output: Path, max_epochs: int, logger: bool = True) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    # a new version per invocation: CSVLogger would replace an existing version's metrics on resume
    loggers = [CSVLogger(output, name="logs")] if logger else False
    if logger:
        try:
            import tensorboard  # noqa: F401
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(output, name="tensorboard"))
        except ImportError:
            pass
    checkpoint = ModelCheckpoint(dirpath=output / "checkpoints", filename="best", monitor="val_loss", save_last=True)
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        logger=loggers,
        callbacks=[checkpoint],
        inference_mode=False,  # forces need autograd in validation and test
        gradient_clip_val=config.optim.gradient_clip,
        log_every_n_steps=1,
        deterministic=False,
        num_sanity_val_steps=0,
        max_time=None if config.optim.max_time_s is None else timedelta(seconds=config.optim.max_time_s),
    )


def _check_targets(config: TrainConfig, train_set: AtomsData) -> None:
    """Stress training needs stress labels on bulk (fully periodic) frames: checked before training."""
    if config.optim.stress_weight > 0:
        if train_set.stress is None:
            raise ValueError(f"{train_set.source}: optim.stress_weight > 0 but the frames have no stress (data.keys.stress)")
        if not all(s.fully_periodic for s in train_set.structures):
            raise ValueError(f"{train_set.source}: stress training needs fully periodic frames")


def train(config: TrainConfig, resume: Optional[str] = None, max_epochs: Optional[int] = None) -> Dict[str, float]:
    """Train, keep the best checkpoint on validation loss, then test it; returns test metrics
    (under DDP: on rank 0; the other processes return an empty mapping after training).

    Every check on the data (files, units, keys, frame counts, elements, stress labels) runs
    before the first step. ``task: properties`` trains molecular properties instead
    (:func:`freecg_plugin.properties.training.train_properties`)."""
    if config.task == "properties":
        from ..properties.training import train_properties

        return train_properties(config, resume, max_epochs)
    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    output = Path(config.output)
    train_set, val_set, test_set = load_data(config.data)
    _check_targets(config, train_set)
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"{resume}: no such checkpoint to resume from")
    if config.optim.energy_loss == "auto":
        config.optim.energy_loss = "per_atom" if len(set(train_set.atom_counts.tolist())) > 1 else "total"
    references = atom_energies(config.data, train_set)
    residual = train_set.energy
    if references:
        residual = residual - reference_offsets(train_set, references)
        print(
            f"reference energies per element ({train_set.energy_unit}): " + ", ".join(f"Z={z}: {e:.4f}" for z, e in references.items()),
            flush=True,
        )
    std = float(residual.std()) if len(residual) > 1 and float(residual.std()) > 0 else 1.0
    cutoff = config.model.cutoff
    task = PotentialTask(
        config.to_dict(),
        float(residual.mean()),
        std,
        train_set.energy_unit,
        train_set.elements,
        mean_neighbours(train_set, cutoff),
        references,
    )
    loaders = (
        frame_loader(
            train_set, cutoff, config.optim.batch_size, shuffle=True, seed=config.optim.seed, cache_graphs=config.data.cache_graphs
        ),
        frame_loader(val_set, cutoff, config.optim.batch_size, shuffle=False, cache_graphs=config.data.cache_graphs),
    )
    epochs = max_epochs if max_epochs is not None else config.optim.max_epochs
    trainer = trainer_for(config, output, epochs)
    print(
        f"training {sum(p.numel() for p in task.model.parameters()):,} parameters on {len(train_set)} frames "
        f"({len(val_set)} validation, {len(test_set)} test) for {epochs} epochs -> {output}",
        flush=True,
    )
    start = time.perf_counter()
    trainer.fit(task, *loaders, ckpt_path=resume)
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(output / "checkpoints" / "last.ckpt")  # the end of the run, for --resume (all ranks: a collective)
    if not trainer.is_global_zero:  # DDP: the other processes stop here; rank 0 tests and reports
        return {}
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


def _predict(task: PotentialTask, data: AtomsData, batch_size: int, device: torch.device):
    """Predictions and references over ``data`` (energy, forces, and stress for bulk frames with
    stress labels) and the model's time per structure in ms."""
    cutoff = task.config.model.cutoff
    with_stress = data.stress is not None and all(s.fully_periodic for s in data.structures)
    keys = ("energy", "forces") + (("stress",) if with_stress else ())
    pred, ref = {k: [] for k in keys}, {k: [] for k in keys}
    model_seconds = 0.0
    for batch in frame_loader(data, cutoff, batch_size, shuffle=False):
        batch["graph"] = batch["graph"].to(device)
        start = time.perf_counter()
        out = task.predict_batch(batch, stress=with_stress)
        if device.type == "cuda":
            torch.cuda.synchronize()
        model_seconds += time.perf_counter() - start
        for key in keys:
            pred[key].append(out[key].detach().cpu())
            ref[key].append(batch[key])
    return {k: torch.cat(v) for k, v in pred.items()}, {k: torch.cat(v) for k, v in ref.items()}, 1000 * model_seconds / len(data)


def _ready(task: PotentialTask, device: torch.device) -> None:
    """Move a loaded task to ``device`` and put its inference model in evaluation mode."""
    task.to(device)
    task.inference_model.eval()


def _check_data_elements(task: PotentialTask, data: AtomsData) -> None:
    try:
        check_elements(torch.tensor(data.elements), task.elements)
    except ValueError as err:
        raise ValueError(f"{data.source}: {err}") from None


def test(checkpoint: str, config: Optional[TrainConfig] = None, test_set: Optional[AtomsData] = None) -> Dict[str, float]:
    """Evaluate a checkpoint on the test frames, on the training device: print the table, write
    the force parity plot."""
    task = load_task(checkpoint)
    config = config or task.config
    device = torch_device(config.accelerator)
    _ready(task, device)
    if test_set is None:
        test_set = load_data(config.data)[2]
    _check_data_elements(task, test_set)
    pred, ref, ms = _predict(task, test_set, max(config.optim.batch_size, 8), device)
    unit = test_set.energy_unit
    values = metrics(pred, ref, unit)
    values["inference_ms_per_structure"] = ms  # energy + forces, graphs given
    output = Path(config.output)
    print(metrics_table(values, unit, f"test set: {len(test_set)} frames ({test_set.source}), checkpoint {checkpoint}"), flush=True)
    plot_parity(pred["forces"], ref["forces"], unit, output / "force_parity.png", f"forces, test MAE {values['forces_mae']:.3f} {unit}/Å")
    return values


def evaluate_file(
    checkpoint: str,
    data_file: str,
    output: Optional[str] = None,
    energy_unit: Optional[str] = None,
    keys: Optional[Dict[str, str]] = None,
    device: Optional[str] = None,
    batch_size: int = 8,
) -> Dict[str, float]:
    """``freecg evaluate``: a trained model on any labelled file: the metrics table (in the
    file's unit), a force parity plot, and with ``output`` the predictions as extxyz.

    Args:
        checkpoint: a ``freecg train`` checkpoint.
        data_file: extxyz, npz or ASE database with energies and forces.
        output: extxyz file for the predictions (``energy``, ``forces``, ``stress`` as the
            frames' calculator results; the file's labels as ``ref_energy``/``ref_forces``/
            ``ref_stress``). The force parity plot is written beside it as
            ``<stem>_force_parity.png`` (without ``output``: into the working directory, named
            after ``data_file``).
        energy_unit, keys: of the file (default: those of the training config).
        device: ``cpu``, ``cuda``... (default: the training device).
    """
    from ..data import load_file

    task = load_task(checkpoint, "cpu")
    config = task.config
    unit = energy_unit or config.data.energy_unit or task.energy_unit
    data = load_file(data_file, unit, keys if keys is not None else config.data.keys)
    data = data.to_unit(task.energy_unit)
    _check_data_elements(task, data)
    run_on = torch.device(device) if device else torch_device(config.accelerator)
    _ready(task, run_on)
    pred, ref, ms = _predict(task, data, batch_size, run_on)
    values = metrics(pred, ref, task.energy_unit)
    values["inference_ms_per_structure"] = ms
    values["frames"] = len(data)
    print(metrics_table(values, task.energy_unit, f"{data_file}: {len(data)} frames, checkpoint {checkpoint}"), flush=True)
    stem = Path(output).with_suffix("") if output else Path(Path(data_file).stem)
    plot_parity(
        pred["forces"],
        ref["forces"],
        task.energy_unit,
        Path(f"{stem}_force_parity.png"),
        f"forces, MAE {values['forces_mae']:.3f} {task.energy_unit}/Å",
    )
    if output:
        _write_predictions(Path(output), data, pred)
        print(f"predictions written to {output}", flush=True)
    return values


def _write_predictions(path: Path, data: AtomsData, pred: Dict[str, torch.Tensor]) -> None:
    """Frames with predicted energy / forces / stress (calculator results) and the labels, as
    extxyz, written atomically."""
    import ase
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write
    from ase.stress import full_3x3_to_voigt_6_stress

    frames, offset = [], 0
    for i, s in enumerate(data.structures):
        n = len(s.numbers)
        pbc = s.pbc if isinstance(s.pbc, tuple) else (bool(s.pbc),) * 3
        atoms = ase.Atoms(
            numbers=s.numbers.numpy(), positions=s.positions.numpy(), cell=None if s.cell is None else s.cell.numpy(), pbc=pbc
        )
        results = {"energy": float(pred["energy"][i]), "forces": pred["forces"][offset : offset + n].double().numpy()}
        atoms.info["ref_energy"] = float(data.energy[i])
        atoms.arrays["ref_forces"] = data.forces[i].numpy()
        if "stress" in pred:
            results["stress"] = full_3x3_to_voigt_6_stress(pred["stress"][i].double().numpy())
            atoms.info["ref_stress"] = full_3x3_to_voigt_6_stress(data.stress[i].numpy())
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
        offset += n
    write_atomic(path, lambda tmp: write(tmp, frames, format="extxyz"))
