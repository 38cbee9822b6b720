"""Module paths of earlier releases that moved in 0.2 (see the CHANGELOG): importing one still
works, gives the objects of its new home and warns once (``FutureWarning``) naming it. The old
paths go in 0.3."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from typing import Dict, Tuple

__all__ = ["MOVED", "install"]

MOVED: Dict[str, Tuple[str, ...]] = {
    "freecg_plugin.calculator": ("freecg_plugin.integrations.ase", "freecg_plugin.checkpoint"),
    "freecg_plugin.md.torchsim": ("freecg_plugin.integrations.torchsim",),
    "freecg_plugin.md.compare": ("freecg_plugin.compare.md",),
    "freecg_plugin.md.config": ("freecg_plugin.configs.md",),
    "freecg_plugin.training.compare": (
        "freecg_plugin.compare.plan",
        "freecg_plugin.compare.execute",
        "freecg_plugin.compare.report",
        "freecg_plugin.compare.statistics",
    ),
    "freecg_plugin.training.equal_parameters": ("freecg_plugin.compare.equal_parameters",),
    "freecg_plugin.training.hosts": ("freecg_plugin.hosts",),
    "freecg_plugin.training.config": (
        "freecg_plugin.configs.train",
        "freecg_plugin.configs.reading",
        "freecg_plugin.data.config",
        "freecg_plugin.hosts",
    ),
    "freecg_plugin.training.data": ("freecg_plugin.data.splits",),
    "freecg_plugin.training.task": (
        "freecg_plugin.training.potential",
        "freecg_plugin.training.recipe",
        "freecg_plugin.data.loaders",
        "freecg_plugin.atomistic",
        "freecg_plugin.evaluation",
    ),
    "freecg_plugin.training.run": (
        "freecg_plugin.training.trainer",
        "freecg_plugin.training.potential",
        "freecg_plugin.evaluation",
        "freecg_plugin.data.splits",
    ),
    "freecg_plugin.training.report": ("freecg_plugin.evaluation", "freecg_plugin.training.curves", "freecg_plugin.files"),
    "freecg_plugin.properties.training": ("freecg_plugin.training.properties", "freecg_plugin.properties.data"),
}
"""Old module path -> the modules its names now live in (searched in order)."""

_RENAMED = {"load_inference_model": "load_trained_model", "InferenceModel": "TrainedModel"}
"""Names that changed along with their module."""


class _MovedModule(types.ModuleType):
    """An old module path: its names are looked up in the new modules."""

    def __getattr__(self, name: str):
        for target in MOVED[self.__name__]:
            module = importlib.import_module(target)
            for candidate in (name, _RENAMED.get(name)):
                if candidate is not None and hasattr(module, candidate):
                    return getattr(module, candidate)
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(MOVED[self.__name__])}) has no attribute {name!r}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        return _MovedModule(spec.name)

    def exec_module(self, module) -> None:
        new = " and ".join(MOVED[module.__name__])
        warnings.warn(
            f"{module.__name__} has moved to {new}; the old path will be removed in freecg-plugin 0.3", FutureWarning, stacklevel=2
        )


def install() -> None:
    """Let the old paths import (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
