"""Training and testing of FreeCG potentials (Lightning); the ``freecg`` CLI runs these."""

from .config import DataConfig, ModelConfig, OptimConfig, TrainConfig, load_config

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "TrainConfig", "load_config"]
