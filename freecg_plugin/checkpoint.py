"""A ``freecg train`` checkpoint, loaded for inference (ASE, TorchSim, ``freecg evaluate``,
``freecg test``, ``freecg md``): the model as tested (the EMA weights when the recipe keeps them),
its training config, elements, cutoff and energy unit. Nothing here imports the trainer.

The file is a Lightning checkpoint: ``hyper_parameters`` (the training config as a mapping and
the statistics the host was built with) and ``state_dict`` (``model.*``, and ``ema.module.*``
with an EMA)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from .configs.train import TrainConfig
from .data.units import convert_energy
from .hosts import HostStatistics, build_potential

__all__ = ["TrainedModel", "load_trained_model", "read_checkpoint", "stored_config"]


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
    """The checkpoint's contents (one-line errors).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable freecg checkpoint (naming it).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        contents = torch.load(path, map_location=device, weights_only=False)
        contents["hyper_parameters"]["config"]
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a readable freecg checkpoint ({reason[:200]})") from None
    return contents


def stored_config(checkpoint) -> TrainConfig:
    """The training config stored in a checkpoint."""
    return TrainConfig.from_dict(read_checkpoint(checkpoint)["hyper_parameters"]["config"], str(checkpoint))


def load_trained_model(checkpoint, device="cpu", dtype: Optional[torch.dtype] = None) -> TrainedModel:
    """The potential of a ``freecg train`` checkpoint (``task: potential``), on ``device``, in
    ``dtype`` (``None``: as trained).

    Raises:
        FileNotFoundError, ValueError: see :func:`read_checkpoint`; a property checkpoint.
    """
    contents = read_checkpoint(checkpoint, device)
    values = contents["hyper_parameters"]
    config = TrainConfig.from_dict(values["config"], str(checkpoint))
    if config.task != "potential":
        raise ValueError(f"{checkpoint}: a {config.task} checkpoint, not a potential (use `freecg test`)")
    elements = sorted(int(z) for z in values.get("elements") or [])
    statistics = HostStatistics(
        elements, values.get("energy_mean", 0.0), values.get("energy_std", 1.0), values.get("avg_num_neighbors", 10.0), config.optim.seed
    )
    model = build_potential(config.model, statistics, values.get("atom_energies"))
    state = contents["state_dict"]
    prefix = "ema.module." if any(key.startswith("ema.module.") for key in state) else "model."
    try:
        model.load_state_dict({key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)})
    except RuntimeError as err:
        raise ValueError(f"{checkpoint}: its weights do not fit its model ({str(err).splitlines()[0][:200]})") from None
    model = model.to(device)
    if dtype is not None:
        model = model.to(dtype)
    return TrainedModel(model.eval(), config, elements, float(config.model.cutoff), values.get("energy_unit", "eV"))
