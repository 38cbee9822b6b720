"""FreeCG core: torch and e3nn only, packaging-safe (no host, no application imports)."""

from .abstract_edges import AbstractEdgeBuilder, split_channels
from .enhancer import AttentionEnhancer
from .group_cg import SYMMETRIES, CGPath, GroupCGTransform, enumerate_paths, path_scales, prepare_kernels
from .layer import PAPER_LAYER, FreeCGConfig, FreeCGLayer, host_start
from .shuffle import AbstractEdgeShuffle, default_shift

__all__ = [
    "AbstractEdgeBuilder",
    "AbstractEdgeShuffle",
    "AttentionEnhancer",
    "CGPath",
    "FreeCGConfig",
    "FreeCGLayer",
    "GroupCGTransform",
    "PAPER_LAYER",
    "SYMMETRIES",
    "default_shift",
    "enumerate_paths",
    "host_start",
    "path_scales",
    "prepare_kernels",
    "split_channels",
]
