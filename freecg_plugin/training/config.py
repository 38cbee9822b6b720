"""Training configuration: dataclasses read from YAML, unknown keys rejected by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "TrainConfig", "build_dataclass", "load_config", "read_yaml_mapping"]


def build_dataclass(cls, values: Mapping[str, Any] | None, where: str):
    """``cls(**values)``, rejecting unknown keys by name (``where`` says which file/section)."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**values)


@dataclass
class DataConfig:
    """Which frames: rMD17 (official split; validation taken from the train file) or any file.

    Attributes:
        kind: ``rmd17``, ``npz`` or ``extxyz``.
        path: folder of the rMD17 files (kind rmd17), else the file.
        molecule, split: rMD17 molecule and split number.
        energy_unit: unit of the file's energies (npz/extxyz); ``train_unit``: unit for training
            and reports (``null``: the file's).
        n_train, n_val, n_test: frame counts (``n_test`` null: all test frames).
        seed: shuffles the train file before taking train/val frames.
        energy_key: extxyz energy key.
    """

    kind: str = "rmd17"
    path: str = "../shared/data/rmd17"
    molecule: str = "aspirin"
    split: str = "01"
    energy_unit: Optional[str] = None
    train_unit: Optional[str] = None
    n_train: int = 950
    n_val: int = 50
    n_test: Optional[int] = None
    seed: int = 0
    energy_key: str = "energy"


@dataclass
class ModelConfig:
    """Which host, its arguments, and FreeCG.

    Attributes:
        host: ``visnet``, ``painn``, ``so3net``, ``nequip`` or ``allegro`` (see
            :mod:`freecg_plugin.training.hosts`).
        args: the host's own constructor arguments (default: SPEC §4's ViSNet).
        cutoff: graph cutoff in Å (given to the host as its cutoff / ``r_max``).
        freecg: FreeCG settings (``null`` trains the bare host).
        freecg_layers: which layers get FreeCG (``null``: all that can).
    """

    host: str = "visnet"
    args: Dict[str, Any] = field(default_factory=lambda: dict(lmax=2, num_heads=8, num_layers=9, hidden_channels=256, num_rbf=32, max_num_neighbors=32))
    cutoff: float = 5.0
    freecg: Optional[Dict[str, Any]] = field(default_factory=dict)
    freecg_layers: Optional[list] = None


@dataclass
class OptimConfig:
    """SPEC §4 defaults: MSE loss with weights energy 0.05 / forces 0.95, AdamW lr 2e-4,
    linear warm-up, reduce-on-plateau (x0.8, patience 30), batch 4."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    batch_size: int = 4
    max_epochs: int = 3000
    warmup_steps: int = 1000
    plateau_factor: float = 0.8
    plateau_patience: int = 30
    energy_weight: float = 0.05
    forces_weight: float = 0.95
    ema_decay: Optional[float] = None
    seed: int = 1
    gradient_clip: Optional[float] = None
    max_time_s: Optional[float] = None
    """Stop training after this many seconds (``max_epochs`` still caps it): equal-time budgets."""


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs/freecg"
    accelerator: str = "auto"
    devices: Any = "auto"
    """Lightning ``devices`` (e.g. 4 GPUs: ``accelerator: gpu, devices: 4`` runs DDP)."""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown sections {unknown}; known: {sorted(known)}")
        return cls(
            data=build_dataclass(DataConfig, values.get("data"), f"{where}: data"),
            model=build_dataclass(ModelConfig, values.get("model"), f"{where}: model"),
            optim=build_dataclass(OptimConfig, values.get("optim"), f"{where}: optim"),
            output=str(values.get("output", cls.output)),
            accelerator=str(values.get("accelerator", cls.accelerator)),
            devices=values.get("devices", cls.devices),
        )


def read_yaml_mapping(path, what: str = "config file") -> Dict[str, Any]:
    """The mapping at the top of a YAML file; errors name the file and the problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: malformed YAML ({err})") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(values).__name__}")
    return dict(values)


def load_config(path) -> TrainConfig:
    """Read a training config from YAML; errors name the file and the problem."""
    return TrainConfig.from_dict(read_yaml_mapping(path), str(path))
