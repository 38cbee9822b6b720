"""A trained potential loaded for inference (ASE, TorchSim, ``freecg evaluate``, ``freecg test``,
``freecg md``) from a ``freecg train`` checkpoint or a safe model file
(:mod:`~freecg_plugin.model_file`): the model as tested (the EMA weights when the recipe keeps
them), its training config, elements, cutoff and energy unit. Nothing here imports the trainer,
and nothing is unpickled: checkpoints are read with ``torch.load(..., weights_only=True)``,
which no environment variable can turn off. A checkpoint that needs unpickling is refused in one
line that names the conversion for a file you trust (:func:`convert_checkpoint`).

A checkpoint is Lightning's: ``hyper_parameters`` (the training config as a mapping and the
statistics the host was built with) and ``state_dict`` (``model.*``, and ``ema.module.*`` with an
EMA). :func:`export_model` writes its potential as a model file."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from . import __version__
from .configs.train import TrainConfig
from .data.units import convert_energy
from .files import write_serialized
from .hosts import HostStatistics, build_potential
from .model_file import is_model_file, read_model_file, write_model_file

__all__ = ["TrainedModel", "convert_checkpoint", "export_model", "load_trained_model", "read_checkpoint", "run_folder_of", "stored_config"]


@dataclass
class TrainedModel:
    """A checkpoint's potential ready to evaluate.

    Attributes:
        model: a graph energy model (see :mod:`freecg_plugin.atomistic`) in evaluation mode.
        config: its training config.
        elements: atomic numbers it knows.
        cutoff: Å.
        energy_unit: the unit of its energies (that of its training data).
    """

    model: torch.nn.Module
    config: TrainConfig
    elements: List[int]
    cutoff: float
    energy_unit: str

    @property
    def to_eV(self) -> float:
        """The factor from the model's energy unit to eV."""
        return float(convert_energy(1.0, self.energy_unit, "eV"))


def read_checkpoint(checkpoint, device="cpu") -> Dict[str, Any]:
    """The checkpoint's contents, read without unpickling (one-line errors).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable freecg checkpoint, or it needs unpickling (it holds
            Python objects, which loading would run: refused, with the conversion to use for a
            file you trust).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    _check_archive(path)
    try:
        contents = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # damaged or not a checkpoint at all
            raise ValueError(f"{path}: not a readable freecg checkpoint ({_first_reason(err)})") from None
        raise ValueError(
            f"{path}: refused: it holds Python objects, and unpickling them would run code from the file; if you trust who made it, "
            f"convert it once with `freecg convert {path} --trust --output NEW.ckpt`"
        ) from None
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a readable freecg checkpoint ({reason[:200]})") from None
    if (
        not isinstance(contents, dict)
        or not isinstance(contents.get("hyper_parameters"), dict)
        or "config" not in contents["hyper_parameters"]
    ):
        raise ValueError(f"{path}: not a freecg checkpoint (no training config in it)")
    return contents


def _check_archive(path: Path) -> None:
    """A checkpoint is a zip archive whose members carry CRC-32s, which ``torch.load`` does not
    check: a changed byte in a tensor would load silently (as wrong numbers or NaN)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        return  # not an archive (an old or foreign format): torch.load says what it is
    except (OSError, EOFError, zipfile.LargeZipFile) as err:
        raise ValueError(f"{path}: not a readable freecg checkpoint ({err})") from None
    if damaged is not None:
        raise ValueError(f"{path}: damaged: its member {damaged} fails its CRC check (the file was changed after it was written)")


def _first_reason(err: Exception) -> str:
    """The part of an error worth a one-line message (torch's weights-only advice left out)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and "weights_only" not in line and "Weights only" not in line]
    return (lines[0] if lines else type(err).__name__)[:200]


def convert_checkpoint(checkpoint, output, trust: bool = False) -> Path:
    """Rewrite an old checkpoint that needs unpickling as one that loads without: its training
    config and statistics as plain values, its weights and training state as tensors; parts that
    are not plain (an optimiser's Python objects) are dropped and named. Unpickling runs code from
    the file: only with ``trust``.

    Raises:
        ValueError: without ``trust``, or when the file holds no training config.
    """
    if not trust:
        raise ValueError(f"{checkpoint}: converting unpickles the file, which runs any code in it: pass --trust for a file you trust")
    contents = torch.load(checkpoint, map_location="cpu", weights_only=False)  # the user said they trust it
    try:
        values = json.loads(json.dumps(contents["hyper_parameters"], default=_plain))
        values["config"] = TrainConfig.from_dict(values["config"], str(checkpoint)).to_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{checkpoint}: holds no freecg training config ({str(err)[:160]})") from None
    if values.get("atom_energies"):
        values["atom_energies"] = {int(z): float(e) for z, e in values["atom_energies"].items()}
    kept, dropped = {"hyper_parameters": values}, []
    for key, value in contents.items():
        if key == "hyper_parameters":
            continue
        if _loads_without_pickles(value):
            kept[key] = value
        else:
            dropped.append(key)
    write_serialized(Path(output), lambda buffer: torch.save(kept, buffer))
    read_checkpoint(output)  # it now loads without unpickling
    if dropped:
        print(f"convert: dropped {dropped} (not plain values): the new checkpoint tests, evaluates and simulates, and may not resume")
    return Path(output)


def _plain(value):
    """JSON for what hyper-parameters may hold beside plain values (numbers as numpy or torch scalars)."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    raise TypeError(f"{type(value).__name__} is not a plain value")


def _loads_without_pickles(value) -> bool:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
        return True
    except Exception:
        return False


def _trained_model(values: Dict[str, Any], state: Dict[str, Any], where: str, prefix: str, device, dtype) -> TrainedModel:
    """Rebuild the potential ``values`` describe and load the weights under ``prefix`` of ``state``."""
    config = TrainConfig.from_dict(values["config"], where)
    if config.task != "potential":
        raise ValueError(f"{where}: a {config.task} checkpoint, not a potential (use `freecg test`)")
    elements = sorted(int(z) for z in values.get("elements") or [])
    statistics = HostStatistics(
        elements, values.get("energy_mean", 0.0), values.get("energy_std", 1.0), values.get("avg_num_neighbors", 10.0), config.optim.seed
    )
    atom_energies = {int(z): float(e) for z, e in (values.get("atom_energies") or {}).items()} or None
    model = build_potential(config.model, statistics, atom_energies)
    try:
        model.load_state_dict({key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)})
    except RuntimeError as err:
        raise ValueError(f"{where}: its weights do not fit its model ({str(err).splitlines()[0][:200]})") from None
    model = model.to(device)
    if dtype is not None:
        model = model.to(dtype)
    return TrainedModel(model.eval(), config, elements, float(config.model.cutoff), values.get("energy_unit", "eV"))


def load_trained_model(checkpoint, device="cpu", dtype: Optional[torch.dtype] = None) -> TrainedModel:
    """The potential of a ``freecg train`` checkpoint (``task: potential``) or of a model file, on
    ``device``, in ``dtype`` (``None``: as trained).

    Raises:
        FileNotFoundError, ValueError: see :func:`read_checkpoint` and
            :func:`~freecg_plugin.model_file.read_model_file`; a property checkpoint.
    """
    if is_model_file(checkpoint):
        stored = read_model_file(checkpoint)
        return _trained_model(stored.record, stored.state_dict, str(checkpoint), "", device, dtype)
    contents = read_checkpoint(checkpoint, device)
    state = contents["state_dict"]
    prefix = "ema.module." if any(key.startswith("ema.module.") for key in state) else "model."
    return _trained_model(contents["hyper_parameters"], state, str(checkpoint), prefix, device, dtype)


def export_model(checkpoint, output) -> Path:
    """Write the potential of ``checkpoint`` as a safe model file (:mod:`~freecg_plugin.model_file`)."""
    contents = read_checkpoint(checkpoint)
    trained = load_trained_model(checkpoint)  # checks that it rebuilds
    values = contents["hyper_parameters"]
    record = {
        "written_by": f"freecg-plugin {__version__}",
        "task": "potential",
        "config": trained.config.to_dict(),
        "elements": trained.elements,
        "energy_mean": float(values.get("energy_mean", 0.0)),
        "energy_std": float(values.get("energy_std", 1.0)),
        "avg_num_neighbors": float(values.get("avg_num_neighbors", 10.0)),
        "atom_energies": {str(z): float(e) for z, e in (values.get("atom_energies") or {}).items()},
        "energy_unit": trained.energy_unit,
        "cutoff": trained.cutoff,
    }
    return write_model_file(output, record, trained.model.state_dict())


def run_folder_of(checkpoint) -> Path:
    """The folder a checkpoint's reports belong in: the run's output folder for
    ``OUTPUT/checkpoints/*.ckpt``, else the folder the file is in."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def stored_config(checkpoint) -> TrainConfig:
    """The training config stored in a checkpoint or a model file."""
    if is_model_file(checkpoint):
        return TrainConfig.from_dict(read_model_file(checkpoint).record["config"], str(checkpoint))
    return TrainConfig.from_dict(read_checkpoint(checkpoint)["hyper_parameters"]["config"], str(checkpoint))
