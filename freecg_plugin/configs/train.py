"""A ``freecg train`` config: :class:`TrainConfig` (data, model, recipe, where it runs), read from
YAML with unknown keys rejected by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..data.config import DataConfig
from ..hosts import ModelConfig
from .reading import build_dataclass, config_path, read_config

__all__ = ["ENERGY_LOSSES", "TASKS", "OptimConfig", "TrainConfig", "load_config"]


ENERGY_LOSSES = ("auto", "total", "per_atom")
TASKS = ("potential", "properties")


@dataclass
class OptimConfig:
    """The paper's recipe by default: MSE loss with weights energy 0.05 / forces 0.95, AdamW lr
    2e-4, linear warm-up, reduce-on-plateau (x0.8, patience 30), batch 4.

    ``energy_loss``: ``total`` (energy per structure), ``per_atom`` (energy per atom, for
    structures of different sizes) or ``auto`` (``per_atom`` when the training frames differ in
    size). ``stress_weight`` > 0 adds a stress MSE term (periodic data with stress labels).
    """

    lr: float = 2e-4
    weight_decay: float = 0.0
    batch_size: int = 4
    max_epochs: int = 3000
    warmup_steps: int = 1000
    plateau_factor: float = 0.8
    plateau_patience: int = 30
    energy_weight: float = 0.05
    forces_weight: float = 0.95
    stress_weight: float = 0.0
    energy_loss: str = "auto"
    ema_decay: Optional[float] = None
    seed: int = 1
    gradient_clip: Optional[float] = None
    max_time_s: Optional[float] = None
    """Stop training after this many seconds of the training clock (``max_epochs`` still caps it):
    equal-time budgets and curve horizons."""
    curve_points_s: Optional[List[float]] = None
    """Training-clock seconds at which the tested weights are saved (``OUTPUT/snapshots/``) and,
    after training, evaluated on the validation and test frames (``OUTPUT/curve.json``): a
    time-to-accuracy curve."""
    deterministic: bool = False
    """Ask torch for deterministic algorithms only (an error names an operation that has none on
    the device). Without it, the scatter sums of message passing add in a varying order on
    several CPU threads: two runs of one config differ in the last digits, and after the main
    job's 40 epochs its test force MAE by about 1 %; with it, two runs on the CPU give the same
    numbers bit for bit, at the same speed (measured: docs, faults and reproducibility)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"optim.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "max_time_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"optim.{name} must be positive, got {value}")
        for name in ("warmup_steps", "plateau_patience", "weight_decay", "energy_weight", "forces_weight", "stress_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name} must not be negative, got {getattr(self, name)}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.energy_loss not in ENERGY_LOSSES:
            raise ValueError(f"optim.energy_loss must be one of {list(ENERGY_LOSSES)}, got {self.energy_loss!r}")
        if self.curve_points_s is not None:
            times = [float(t) for t in self.curve_points_s]
            if not times or any(t <= 0 for t in times) or times != sorted(set(times)):
                raise ValueError(f"optim.curve_points_s must be increasing positive seconds, got {self.curve_points_s}")


@dataclass
class TrainConfig:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs/freecg"
    accelerator: str = "auto"
    devices: Any = "auto"
    """Lightning ``devices`` (e.g. 4 GPUs: ``accelerator: gpu, devices: 4`` runs DDP)."""
    num_nodes: int = 1
    """Lightning ``num_nodes``: machines, each running ``devices`` processes (SLURM or torchrun)."""
    strategy: str = "auto"
    """Lightning ``strategy`` (``auto``: DDP when there is more than one process; ``ddp`` forces it,
    e.g. on the CPU with ``accelerator: cpu, devices: 2``, over gloo)."""
    task: str = "potential"
    """``potential`` (energies and forces) or ``properties`` (molecular properties, ``targets``)."""
    targets: Optional[List[str]] = None
    """``task: properties``: QM9 target names (``mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv``)."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if self.task == "properties":
            from ..properties.model import PROPERTY_HOSTS
            from ..properties.qm9 import check_targets

            check_targets(self.targets or [])
            if self.model.host not in PROPERTY_HOSTS:
                raise ValueError(f"task properties: model.host must be one of {list(PROPERTY_HOSTS)}, got {self.model.host!r}")
            if self.optim.curve_points_s is not None:
                raise ValueError("optim.curve_points_s: time-to-accuracy curves are for task potential")
        elif self.targets:
            raise ValueError("targets go with task: properties")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> TrainConfig:
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown sections {unknown}; known: {sorted(known)}")
        try:
            return cls(
                data=build_dataclass(DataConfig, values.get("data"), f"{where}: data"),
                model=build_dataclass(ModelConfig, values.get("model"), f"{where}: model"),
                optim=build_dataclass(OptimConfig, values.get("optim"), f"{where}: optim"),
                output=str(values.get("output", "runs/freecg")),
                accelerator=str(values.get("accelerator", "auto")),
                devices=values.get("devices", "auto"),
                num_nodes=int(values.get("num_nodes", 1)),
                strategy=str(values.get("strategy", "auto")),
                task=str(values.get("task", "potential")),
                targets=None if values.get("targets") is None else [str(t) for t in values["targets"]],
            )
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(where) else f"{where}: {message}") from None


def load_config(path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training config from YAML (a path, or the name of a shipped config such as
    ``small``), apply ``key=value`` overrides; errors name the file and the problem."""
    path = config_path(path, "train")
    return TrainConfig.from_dict(read_config(path, overrides), str(path))
