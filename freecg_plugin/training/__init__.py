"""The trainer: :func:`train` (what ``freecg train`` runs) for the potential and the property
task, with the shared recipe. Configs live in :mod:`freecg_plugin.configs`."""

from ..configs.train import OptimConfig, TrainConfig, load_config
from ..data.config import DataConfig
from ..hosts import ModelConfig
from .potential import PotentialTask, test
from .properties import PropertyTask
from .trainer import train

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "PotentialTask", "PropertyTask", "TrainConfig", "load_config", "test", "train"]
