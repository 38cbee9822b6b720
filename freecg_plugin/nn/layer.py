"""The FreeCG layer: the four parts composed, each behind a switch (for ablations)."""

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .abstract_edges import AbstractEdgeBuilder, split_channels
from .enhancer import AttentionEnhancer
from .group_cg import CGPath, GroupCGTransform
from .shuffle import AbstractEdgeShuffle

__all__ = ["FreeCGConfig", "FreeCGLayer", "PAPER_LAYER", "host_start"]


PAPER_LAYER = {"operand_norm": False, "keep_self_update": False, "init": "xavier"}
"""The settings that give the paper's layer: write-back ``A + shuffle(P)``, raw product, Xavier init."""


@dataclass
class FreeCGConfig:
    """Configuration of one FreeCG layer (defaults: the reference sizes, ViSNet with H = 256).

    The defaults start the layer as its host: the FreeCG weights (group CG and enhancer) start at
    zero and the host's own update is kept, so host + FreeCG computes exactly what the host does
    at step 0 and every FreeCG weight receives gradients from the first step; the second operand
    of the quadratic product is normalised, so that the term cannot grow with the square of the
    features. :data:`PAPER_LAYER` gives the paper's layer.

    Attributes:
        irreps: irreps of one channel of the host's equivariant features, e.g. ``"1o+2e"``.
        channels: C, the host's channel count.
        groups: G; K = C / G abstract edges per group.
        paths: CG paths (``"1o x 2e -> 1o"`` strings or 6-tuples); ``None``: the adapter's
            choice, else all that ``symmetry`` allows (the reference's 4 for ``1o+2e`` under O3);
            ``"all"``: all that ``symmetry`` allows, also where an adapter chooses fewer (MACE).
        symmetry: ``"O3"`` or ``"SO3"``.
        group_cg: the group CG transform (off: the layer returns the host's own update).
        shuffle: roll the group CG output by whole groups (needs ``group_cg``).
        shift: shuffle shift in channels (a multiple of K); ``None``: the reference rule.
        enhancer: build the attention enhancer (used through :meth:`FreeCGLayer.edge_bias`).
        enhancer_out: attention heads, or the host's per-edge filter width.
        enhancer_per_channel: for hosts whose per-edge filter has several blocks of ``channels``
            entries (PaiNN's three filters, NequIP's tensor-product paths): one enhancer bias per
            channel, shared by the blocks, instead of one per filter entry. The enhancer's linear
            map is then no wider than the features, so it runs per atom before the gather (see
            :class:`AttentionEnhancer`): PaiNN's enhancer costs about a fifth of what it did.
            The adapters set ``enhancer_out`` from it; hosts with one block (SO3net) or
            attention heads (ViSNet) reject it.
        keep_self_update: write back ``A + B + shuffle(P)`` (the host's own update plus the
            FreeCG term) instead of the paper's ``A + shuffle(P)``. Only ViSNet has a separate
            self-update term B; the other adapters fix this to ``False`` (their ``A + P`` is
            already host + FreeCG).
        gate: multiply the group CG term and the enhancer's bias each by a learnable scalar
            that starts at zero (one pair per layer; needs a non-zero ``init``). Off by default:
            a closed gate opens slowly (measured in the README: at the quick plan's budget it left
            SO3net + FreeCG where the bare host was, while zero weights gained 17 %).
        operand_norm: divide the second operand per abstract edge by ``sqrt(1 + mean_m B[m]^2)``
            (an invariant), so that the product grows linearly, not quadratically, with the
            host's features.
        init: group CG weights: ``"zeros"`` (with the enhancer's weights: the layer adds nothing
            until trained), ``"normal"`` (unit variance, e3nn's convention) or ``"xavier"`` (the
            authors': about ±0.009 for 32 x 8, a term about 1 % of the inputs' scale).
    """

    irreps: str = "1o+2e"
    channels: int = 256
    groups: int = 32
    paths: Union[None, str, Sequence[Any]] = None
    symmetry: str = "O3"
    group_cg: bool = True
    shuffle: bool = True
    shift: Optional[int] = None
    enhancer: bool = True
    enhancer_out: int = 8
    enhancer_per_channel: bool = False
    keep_self_update: bool = True
    gate: bool = False
    operand_norm: bool = True
    init: str = "zeros"

    @property
    def listed_paths(self) -> Optional[Sequence[Any]]:
        """``paths`` as :class:`GroupCGTransform` takes it (``None`` for every allowed path)."""
        return None if self.paths == "all" else self.paths

    def __post_init__(self) -> None:
        if isinstance(self.paths, str) and self.paths != "all":
            raise ValueError(f"FreeCG paths: a list of CG paths or 'all', got {self.paths!r}")

    @property
    def edges_per_group(self) -> int:
        return split_channels(self.channels, self.groups)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "FreeCGConfig":
        """Build from a mapping (e.g. a YAML block), rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown FreeCG config keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def for_host(cls, values: Optional[Mapping[str, Any]], host: Mapping[str, Any], **defaults: Any) -> "FreeCGConfig":
        """A user's settings completed by a host adapter.

        ``host`` fields (irreps, channels, ...) are fixed by the host: a user value that differs is
        an error naming them. ``defaults`` fill only what the user left out. ``edges_per_group``
        (K) may be given instead of ``groups``: then ``groups = channels / K``. Without either,
        K = 8 when the host's channels allow it, else one group.
        """
        values = dict(values or {})
        channels = host.get("channels", values.get("channels"))
        if channels is not None and "groups" not in values and "edges_per_group" not in values:
            defaults.setdefault("groups", channels // 8 if channels % 8 == 0 else 1)
        if "edges_per_group" in values:
            k = values.pop("edges_per_group")
            if not isinstance(k, int) or k < 1 or channels is None or channels % k:
                raise ValueError(f"edges_per_group {k!r} does not divide the host's {channels} channels")
            if values.get("groups", channels // k) != channels // k:
                raise ValueError(f"groups {values['groups']} and edges_per_group {k} disagree for {channels} channels")
            values["groups"] = channels // k
        clash = sorted(key for key in host if key in values and values[key] != host[key])
        if clash:
            fixed = {key: host[key] for key in clash}
            raise ValueError(f"FreeCG keys {clash} are set by the host ({fixed}); leave them out")
        return cls.from_dict({**defaults, **values, **host})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if values["paths"] not in (None, "all"):
            values["paths"] = [str(CGPath.parse(p)) for p in values["paths"]]
        return values


def host_start(settings: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The fields that make a layer built from ``settings`` start exactly as its host:
    ``init="zeros"``, or nothing with a gate (which starts closed). For splicing into a trained host."""
    return {} if dict(settings or {}).get("gate", FreeCGConfig.gate) else {"init": "zeros"}


class FreeCGLayer(nn.Module):
    """FreeCG on a host's aggregated messages.

    ``forward(A, B)`` with A the aggregated equivariant messages and B the host's self-update
    vector (ViSNet: ``vec3 * o1``) returns the update written back to the node features:
    ``A + B + T`` (``keep_self_update``) or the paper's ``A + T``, with the FreeCG term
    ``T = g * shuffle(GroupCG(edges(A), n(edges(B))))`` (``g`` the gate, ``n`` the operand
    normalisation, each when enabled); with ``group_cg`` off, ``A + B``. ``edge_bias`` is the
    attention enhancer, times its own gate.

    Shapes:
        A, B: ``[N, irreps.dim, C]`` -> ``[N, irreps.dim, C]``;
        ``edge_bias``: features ``[N, irreps.dim, C]``, sh ``[E, irreps.dim]``, source ``[E]``
        -> ``[E, enhancer_out]``.
    """

    def __init__(self, config: FreeCGConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = FreeCGConfig.from_dict({**(asdict(config) if config else {}), **overrides})
        if config.shuffle and not config.group_cg:
            raise ValueError("shuffle acts on the group CG output: enable group_cg or disable shuffle")
        if config.gate and config.init == "zeros":
            raise ValueError("gate=True with init='zeros' would never learn (both factors start at zero): set init='normal'")
        self.config = config
        k = config.edges_per_group
        self.builder = AbstractEdgeBuilder(config.irreps, config.channels, config.groups, k)
        self.use_group_cg = bool(config.group_cg)
        self.keep_self_update = bool(config.keep_self_update)
        self.operand_norm = bool(config.operand_norm)
        self.group_cg = (
            GroupCGTransform(config.irreps, config.groups, k, config.listed_paths, config.symmetry, init=config.init)
            if config.group_cg
            else None
        )
        self.shuffle = AbstractEdgeShuffle(config.groups, k, config.shift if config.shuffle else 0)
        self.enhancer = AttentionEnhancer(config.irreps, config.channels, config.enhancer_out, config.symmetry) if config.enhancer else None
        if self.enhancer is not None and config.init == "zeros":
            nn.init.zeros_(self.enhancer.linear.weight)
        self.gate = nn.Parameter(torch.zeros(())) if config.gate and self.group_cg is not None else None
        self.enhancer_gate = nn.Parameter(torch.zeros(())) if config.gate and self.enhancer is not None else None

    def forward(self, messages: Tensor, self_update: Tensor) -> Tensor:
        if self.group_cg is None:
            return messages + self_update
        update = messages + self.builder.merge(self.transform(self.builder(messages), self.builder(self_update)))
        if self.keep_self_update:
            update = update + self_update
        return update

    def transform(self, edges: Tensor, other: Tensor) -> Tensor:
        """The FreeCG term ``g * shuffle(GroupCG(edges, n(other)))`` on abstract edges already built.

        For hosts whose features are laid out differently (e3nn's ``mul_ir``, Allegro's strided
        ``[N, C, dim]``): they build the edges themselves and write the result back their way.

        Shapes: ``[N, G, K, irreps.dim]`` twice -> ``[N, G, K, irreps.dim]``.
        """
        group_cg = self.group_cg
        if group_cg is None:
            raise RuntimeError("this FreeCG layer was built with group_cg=False")
        if self.operand_norm:
            other = other * torch.rsqrt(1.0 + other.square().mean(dim=-1, keepdim=True))
        term = self.shuffle(group_cg(edges, other))
        gate = self.gate
        if gate is not None:
            term = term * gate
        return term

    def edge_bias(self, features: Tensor, sh: Tensor, source: Tensor) -> Tensor:
        """The enhancer's invariant per-edge bias (times its gate) from the senders' ``features``:
        ``[E, enhancer_out]``."""
        enhancer = self.enhancer
        if enhancer is None:
            raise RuntimeError("this FreeCG layer was built with enhancer=False")
        bias = enhancer(features, sh, source)
        gate = self.enhancer_gate
        if gate is not None:
            bias = bias * gate
        return bias
