"""FreeCG core: torch and e3nn only, packaging-safe (no host, no application imports)."""

from .abstract_edges import AbstractEdgeBuilder, split_channels
from .enhancer import AttentionEnhancer
from .group_cg import SYMMETRIES, CGPath, GroupCGTransform, enumerate_paths
from .layer import FreeCGConfig, FreeCGLayer
from .shuffle import AbstractEdgeShuffle, default_shift

__all__ = [
    "AbstractEdgeBuilder",
    "AbstractEdgeShuffle",
    "AttentionEnhancer",
    "CGPath",
    "FreeCGConfig",
    "FreeCGLayer",
    "GroupCGTransform",
    "SYMMETRIES",
    "default_shift",
    "enumerate_paths",
    "split_channels",
]
