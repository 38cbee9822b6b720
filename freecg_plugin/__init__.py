"""freecg-plugin: the FreeCG layer (ICLR 2025) as a drop-in part of equivariant potentials.

The public API is the core layer; host adapters live in ``freecg_plugin.adapters`` and
symmetry test helpers in ``freecg_plugin.testing``.
"""

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

__version__ = "0.1.0"

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
