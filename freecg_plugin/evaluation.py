"""A trained potential against labelled frames: predictions, error metrics (MAE / RMSE in the
data's unit and in meV), the metrics table, the force parity plot, and predictions as extxyz
(``freecg evaluate``; the trainer's test runs the same :func:`predict` and :func:`metrics`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .atomistic import check_elements, evaluate
from .checkpoint import TrainedModel, load_trained_model, run_folder_of
from .data import AtomsData, load_file
from .data.loaders import frame_loader
from .data.units import convert_energy
from .files import write_atomic
from .plots import plot_parity

__all__ = [
    "check_data_elements",
    "evaluate_file",
    "evaluate_model",
    "metrics",
    "metrics_table",
    "parity_plot",
    "predict",
    "torch_device",
    "write_predictions",
]


def torch_device(accelerator: str) -> torch.device:
    """The device a Lightning ``accelerator`` setting trains on (evaluation runs there too)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def check_data_elements(trained: TrainedModel, data: AtomsData) -> None:
    """Raise ``ValueError`` (naming the file) when ``data`` holds elements the model does not know."""
    try:
        check_elements(torch.tensor(data.elements), trained.elements)
    except ValueError as err:
        raise ValueError(f"{data.source}: {err}") from None


def predict(model: torch.nn.Module, data: AtomsData, cutoff: float, batch_size: int, device: torch.device):
    """``(pred, ref, ms)``: predictions and references over ``data`` (energy, forces, and stress
    for bulk frames with stress labels, each concatenated over frames) and the model's time per
    structure in ms (graphs given)."""
    with_stress = data.stress is not None and all(s.fully_periodic for s in data.structures)
    keys = ("energy", "forces") + (("stress",) if with_stress else ())
    pred, ref = {k: [] for k in keys}, {k: [] for k in keys}
    model_seconds = 0.0
    for batch in frame_loader(data, cutoff, batch_size, shuffle=False):
        graph = batch["graph"].to(device)
        start = time.perf_counter()
        with torch.enable_grad():
            out = evaluate(model, graph, forces=True, stress=with_stress, training=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        model_seconds += time.perf_counter() - start
        for key in keys:
            pred[key].append(out[key].detach().cpu())
            ref[key].append(batch[key])
    return {k: torch.cat(v) for k, v in pred.items()}, {k: torch.cat(v) for k, v in ref.items()}, 1000 * model_seconds / len(data)


def metrics(pred: Dict[str, Tensor], ref: Dict[str, Tensor], unit: str) -> Dict[str, float]:
    """Energy, force (and stress, when both have it) MAE/RMSE in ``unit`` (/Å, /Å^3) and in meV."""
    out = {}
    for key in [k for k in ("energy", "forces", "stress") if k in pred and k in ref]:
        err = (pred[key] - ref[key]).double()
        mae, rmse = err.abs().mean().item(), err.square().mean().sqrt().item()
        out[f"{key}_mae"], out[f"{key}_rmse"] = mae, rmse
        out[f"{key}_mae_meV"], out[f"{key}_rmse_meV"] = convert_energy(mae, unit, "meV"), convert_energy(rmse, unit, "meV")
    return out


def metrics_table(values: Dict[str, float], unit: str, title: str) -> str:
    """The metrics as a Markdown table under ``title``."""
    rows = [f"{title}", "", f"| quantity | MAE ({unit}) | RMSE ({unit}) | MAE (meV) | RMSE (meV) |", "|---|---|---|---|---|"]
    for key, name in (("energy", "energy"), ("forces", "forces (per Å)"), ("stress", "stress (per Å^3)")):
        if key + "_mae" not in values:
            continue
        rows.append(
            f"| {name} | {values[key + '_mae']:.4f} | {values[key + '_rmse']:.4f} | "
            f"{values[key + '_mae_meV']:.2f} | {values[key + '_rmse_meV']:.2f} |"
        )
    return "\n".join(rows) + "\n"


def parity_plot(pred: Tensor, ref: Tensor, unit: str, path, title: str) -> None:
    """The force parity plot."""
    plot_parity(pred, ref, path, title, f"reference force component ({unit}/Å)", f"predicted ({unit}/Å)")


def evaluate_model(trained: TrainedModel, data: AtomsData, device: torch.device, batch_size: int) -> Tuple[Dict[str, float], dict, dict]:
    """Metrics of ``trained`` on ``data`` (in the model's unit) with the model's time per
    structure, the predictions and the references (see :func:`predict`)."""
    check_data_elements(trained, data)
    trained.model.to(device)
    pred, ref, ms = predict(trained.model, data, trained.cutoff, batch_size, device)
    values = metrics(pred, ref, trained.energy_unit)
    values["inference_ms_per_structure"] = ms  # energy + forces, graphs given
    return values, pred, ref


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
    model's unit), a force parity plot, and with ``output`` the predictions as extxyz.

    Args:
        checkpoint: a ``freecg train`` checkpoint.
        data_file: extxyz, npz or ASE database with energies and forces.
        output: extxyz file for the predictions (``energy``, ``forces``, ``stress`` as the
            frames' calculator results; the file's labels as ``ref_energy``/``ref_forces``/
            ``ref_stress``). The force parity plot is written beside it as
            ``<stem>_force_parity.png`` (without ``output``: beside the model, in its run
            folder, named after ``data_file``: never into the working directory).
        energy_unit, keys: of the file (default: those of the training config).
        device: ``cpu``, ``cuda``... (default: the training device).
    """
    trained = load_trained_model(checkpoint, "cpu")
    config = trained.config
    unit = energy_unit or config.data.energy_unit or trained.energy_unit
    data = load_file(data_file, unit, keys if keys is not None else config.data.keys).to_unit(trained.energy_unit)
    values, pred, ref = evaluate_model(trained, data, torch.device(device) if device else torch_device(config.accelerator), batch_size)
    values["frames"] = len(data)
    print(metrics_table(values, trained.energy_unit, f"{data_file}: {len(data)} frames, checkpoint {checkpoint}"), flush=True)
    stem = Path(output).with_suffix("") if output else run_folder_of(checkpoint) / f"evaluate_{Path(data_file).stem}"
    title = f"forces, MAE {values['forces_mae']:.3f} {trained.energy_unit}/Å"
    parity_plot(pred["forces"], ref["forces"], trained.energy_unit, Path(f"{stem}_force_parity.png"), title)
    print(f"force parity plot: {stem}_force_parity.png", flush=True)
    if output:
        write_predictions(Path(output), data, pred)
        print(f"predictions written to {output}", flush=True)
    return values


def write_predictions(path: Path, data: AtomsData, pred: Dict[str, Tensor]) -> None:
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
