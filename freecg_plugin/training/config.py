"""Training configuration: dataclasses read from YAML, unknown keys rejected by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "build_dataclass",
    "config_path",
    "load_config",
    "read_config",
    "read_yaml_mapping",
    "resolve_data_paths",
]


def build_dataclass(cls, values: Mapping[str, Any] | None, where: str):
    """``cls(**values)``, rejecting unknown keys by name (``where`` says which file/section)."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**values)


ENERGY_LOSSES = ("auto", "total", "per_atom")
TASKS = ("potential", "properties")


@dataclass
class DataConfig:
    """Which frames: a dataset by name, or the user's own files.

    Attributes:
        dataset: a registry name (``freecg data list``), e.g. ``rmd17/aspirin`` (official split
            ``split``: train file -> train/val frames, test file -> test frames) or
            ``water/deepmd64`` (one file: train, val and test frames drawn from it).
        split: rMD17 split, ``1``..``5`` or ``"01"``..``"05"``.
        train, val, test: the user's files (extxyz, npz, ASE database...), instead of
            ``dataset``; relative paths in a config file are relative to that file. ``val`` and
            ``test`` may be left out: their frames are then drawn from ``train``.
        val_fraction: share of the training frames held out for validation (instead of
            ``n_val`` or a ``val`` file).
        energy_unit: unit of the files' energies (required for the user's files); ``train_unit``:
            unit for training and reports (``null``: the data's).
        keys: our names (``energy, forces, stress``; for npz also ``numbers, positions, cell``)
            -> the file's keys.
        n_train, n_val, n_test: frame counts (``null``: all that are left / none asked / all).
        seed: shuffles the training frames before train/val frames are taken.
        reference_energies: per-element energies subtracted before training and added back in
            every prediction: a mapping ``{H: -13.6, O: -432.1}`` (symbols or atomic numbers, in
            ``energy_unit``), ``fit`` (least squares on the training frames), ``none``, or
            ``auto`` (``fit`` when the training frames differ in composition, else ``none``).
        cache_graphs: keep each frame's neighbour list after its first batch (about 11 bytes per
            edge: 1e5 frames of 5,000 edges take 5.5 GB); ``false`` rebuilds them for every batch.
    """

    dataset: Optional[str] = None
    split: Any = "01"
    train: Optional[str] = None
    val: Optional[str] = None
    test: Optional[str] = None
    val_fraction: Optional[float] = None
    energy_unit: Optional[str] = None
    train_unit: Optional[str] = None
    keys: Optional[Dict[str, str]] = None
    n_train: Optional[int] = None
    n_val: Optional[int] = None
    n_test: Optional[int] = None
    seed: int = 0
    reference_energies: Any = "auto"
    cache_graphs: bool = True

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.train is None):
            raise ValueError("data: give either `dataset` (a name, see `freecg data list`) or `train` (a file)")
        if self.dataset is not None and (self.val is not None or self.test is not None):
            raise ValueError("data: `val` and `test` files go with `train`, not with `dataset`")
        given = [
            name for name, value in (("val", self.val), ("val_fraction", self.val_fraction), ("n_val", self.n_val)) if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"data: give one of val, val_fraction, n_val (got {given})")
        if not given:
            raise ValueError("data: no validation frames: set data.val (a file), data.val_fraction or data.n_val")
        if self.val_fraction is not None and not 0 < float(self.val_fraction) < 1:
            raise ValueError(f"data.val_fraction must be between 0 and 1, got {self.val_fraction}")
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"data.{name} must be a positive integer or null, got {value!r}")
        try:
            self.split = f"{int(self.split):02d}"
        except (TypeError, ValueError):
            raise ValueError(f'data.split must be a split number such as 1 or "01", got {self.split!r}') from None
        if not isinstance(self.cache_graphs, bool):
            raise ValueError(f"data.cache_graphs must be true or false, got {self.cache_graphs!r}")
        if isinstance(self.reference_energies, str) and self.reference_energies not in ("auto", "fit", "none"):
            raise ValueError(f"data.reference_energies must be auto, fit, none or a mapping, got {self.reference_energies!r}")


@dataclass
class ModelConfig:
    """Which host, its arguments, and FreeCG.

    Attributes:
        host: ``visnet``, ``painn``, ``so3net``, ``nequip`` or ``allegro`` (see
            :mod:`freecg_plugin.training.hosts`).
        args: the host's own constructor arguments (default: the paper's ViSNet).
        cutoff: graph cutoff in Å (given to the host as its cutoff / ``r_max``).
        freecg: FreeCG settings (``null`` trains the bare host).
        freecg_layers: which layers get FreeCG (``null``: all that can).
    """

    host: str = "visnet"
    args: Dict[str, Any] = field(
        default_factory=lambda: dict(lmax=2, num_heads=8, num_layers=9, hidden_channels=256, num_rbf=32, max_num_neighbors=32)
    )
    cutoff: float = 5.0
    freecg: Optional[Dict[str, Any]] = field(default_factory=dict)
    freecg_layers: Optional[list] = None


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
    """Stop training after this many seconds (``max_epochs`` still caps it): equal-time budgets."""

    def __post_init__(self) -> None:
        if self.energy_loss not in ENERGY_LOSSES:
            raise ValueError(f"optim.energy_loss must be one of {list(ENERGY_LOSSES)}, got {self.energy_loss!r}")


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


DATA_FILES = ("train", "val", "test")


def resolve_data_paths(data: Optional[Mapping[str, Any]], base: Path) -> Dict[str, Any]:
    """``data`` with its relative file paths (``train``, ``val``, ``test``) made absolute
    against ``base`` (the folder of the config file that names them)."""
    data = dict(data or {})
    for key in DATA_FILES:
        if isinstance(data.get(key), str) and not Path(data[key]).expanduser().is_absolute():
            data[key] = str((base / data[key]).resolve())
    return data


def apply_overrides(values: Mapping[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """``values`` with ``key=value`` overrides applied (OmegaConf dot-list: ``optim.lr=1e-3``,
    ``data.train=my.xyz``, ``model.freecg=null``). File paths given here are relative to the
    working directory."""
    if not overrides:
        return dict(values)
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ValueError(f"override {item!r} is not key=value (e.g. optim.lr=1e-3)")
    try:
        changes = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise ValueError(f"bad override: {err}".splitlines()[0]) from None
    if "data" in changes:
        changes["data"] = resolve_data_paths(changes["data"], Path.cwd())
    return _merge(dict(values), changes)


def _merge(base: Dict[str, Any], changes: Mapping[str, Any]) -> Dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


def read_config(path, overrides: Sequence[str] = (), what: str = "config file") -> Dict[str, Any]:
    """A config file's mapping, its data paths resolved against the file, overrides applied."""
    values = read_yaml_mapping(path, what)
    if isinstance(values.get("data"), Mapping):
        values["data"] = resolve_data_paths(values["data"], Path(path).resolve().parent)
    return apply_overrides(values, overrides)


def load_config(path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training config from YAML (a path, or the name of a shipped config such as
    ``small``), apply ``key=value`` overrides; errors name the file and the problem."""
    path = config_path(path, "train")
    return TrainConfig.from_dict(read_config(path, overrides), str(path))


def config_path(name_or_path, kind: str) -> Path:
    """A config file: ``name_or_path`` if it is a file, else the shipped config of that name
    (``kind``: ``train`` or ``compare``)."""
    from ..configs import shipped_config

    path = Path(name_or_path)
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    return shipped_config(kind, str(name_or_path))
