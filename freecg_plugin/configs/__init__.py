"""Configs: the ones shipped inside the package (so that ``freecg train --config small`` works
after a plain ``pip install``), reading YAML with ``key=value`` overrides, and the schema of a
``freecg train`` config. Copy a shipped one (``freecg train --config small --print-config >
mine.yaml``) to start your own. The schemas: :class:`TrainConfig` (``freecg train``) and
:class:`MDConfig` (``freecg md``)."""

from .md import ENSEMBLES, MDConfig
from .reading import apply_overrides, build_dataclass, config_path, read_config, read_yaml_mapping, resolve_data_paths
from .shipped import KINDS, shipped_config, shipped_configs
from .train import OptimConfig, TrainConfig, load_config

__all__ = [
    "ENSEMBLES",
    "KINDS",
    "MDConfig",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "build_dataclass",
    "config_path",
    "load_config",
    "read_config",
    "read_yaml_mapping",
    "resolve_data_paths",
    "shipped_config",
    "shipped_configs",
]
