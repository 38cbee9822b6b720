"""freecg-plugin: the FreeCG layer (ICLR 2025) as a drop-in part of equivariant potentials.

The public API is the core layer; host adapters live in ``freecg_plugin.adapters``, symmetry
test helpers in ``freecg_plugin.testing``, the ASE calculator in
``freecg_plugin.integrations``.
"""

from importlib.metadata import PackageNotFoundError, version

from . import _moved
from .nn import (
    AbstractEdgeBuilder,
    AbstractEdgeShuffle,
    AttentionEnhancer,
    CGPath,
    FreeCGConfig,
    FreeCGLayer,
    GroupCGTransform,
    enumerate_paths,
)

try:
    __version__ = version("freecg-plugin")  # one version source: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_moved.install()

__all__ = [
    "AbstractEdgeBuilder",
    "AbstractEdgeShuffle",
    "AttentionEnhancer",
    "CGPath",
    "FreeCGConfig",
    "FreeCGLayer",
    "GroupCGTransform",
    "enumerate_paths",
]
