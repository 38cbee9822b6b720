"""FreeCG in PyG's ViSNet (``torch_geometric.nn.models.ViSNet``, PyG 2.8.1): the paper's model.

Where the layer goes: every ``ViS_MP`` (or ``ViS_MP_Vertex``) entry of
``representation_model.vis_mp_layers`` is replaced by a subclass that

* adds the attention enhancer ``b_ij = Linear(sum_m vec_j[m] d_ij[m])`` (one term per head,
  computed in ``forward`` from the atoms' ``vec``) to the attention logit before its activation
  (``message``);
* writes back ``dvec = vec_out + vec3 * o1 + shuffle(GroupCG(vec_out, n(vec3 * o1)))`` instead of
  the host's ``vec3 * o1 + vec_out`` (``forward``), where ``vec_out`` is the aggregated message
  (the abstract edges), ``vec3 * o1`` the host's self-update vector and ``n`` the operand
  normalisation; the paper's ``vec_out + shuffle(GroupCG(vec_out, vec3 * o1))`` with
  :data:`~freecg_plugin.nn.PAPER_LAYER`.

PyG's ViSNet is not continuous at the cutoff once trained: the vector message
``vec_j * s1 + s2 * d_ij`` keeps ``act(s_proj.bias)`` when the attention vanishes, so the energy
jumps as an atom crosses the cutoff (measured: 0.46 energy units with random weights; zero only
while ``s_proj.bias`` is zero, as at initialisation). With ``smooth_cutoff`` (the default for
models built here, bare or with FreeCG: :func:`build_visnet`, :func:`build_visnet_freecg`) the
vector message is multiplied by the cutoff function too. Splicing into a
trained host keeps the host's message (``smooth_cutoff=False``) unless asked, so that its energies
are reproduced exactly.

ViSNet's ``vec`` is ``[N, 8, H]`` for lmax 2 (``1o+2e`` in e3nn's basis, unit-norm blocks) or
``[N, 3, H]`` for lmax 1 (``1o``: no parity-respecting path exists there, so lmax 1 needs
``symmetry="SO3"``). PyG's ``radius_graph`` needs pyg-lib, which is not on PyPI, so the models
built or spliced here use :class:`RadiusGraph`, a cell-list graph with the same contract.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import ViSNet
from torch_geometric.nn.models.visnet import ViS_MP, ViS_MP_Vertex

from freecg_plugin.neighbors import neighbor_list
from freecg_plugin.nn import FreeCGConfig, FreeCGLayer, host_start

__all__ = [
    "FreeCGViS_MP",
    "FreeCGViS_MP_Vertex",
    "RadiusGraph",
    "ViSNetPotential",
    "build_visnet",
    "build_visnet_freecg",
    "splice_visnet",
]


class RadiusGraph(nn.Module):
    """ViSNet's ``Distance`` contract without pyg-lib: ``(pos, batch) -> (edge_index, r, vec)``.

    All pairs of the same structure within ``cutoff`` (self-loops included, with ``r = 0``),
    capped at the ``max_num_neighbors`` nearest per target atom. Row 0 of ``edge_index`` is the
    source j, row 1 the target i, and ``vec = pos[j] - pos[i]``. Each structure's pairs come from
    :func:`freecg_plugin.neighbors.neighbor_list` (a cell list: time and memory linear in the
    atoms), then the cap keeps each target's nearest; ``batch`` must be sorted, as PyG makes it.
    Periodic systems get their edges (with shifts) from :mod:`freecg_plugin.neighbors` directly.
    """

    def __init__(self, cutoff: float, max_num_neighbors: int = 32, add_self_loops: bool = True) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.max_num_neighbors = int(max_num_neighbors)
        self.add_self_loops = add_self_loops

    def forward(self, pos: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        with torch.no_grad():
            if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
                raise ValueError("RadiusGraph: batch must be sorted (atoms of one structure together)")
            pieces, start = [], 0
            for count in torch.unique_consecutive(batch, return_counts=True)[1].tolist():
                edges, _ = neighbor_list(pos[start : start + count], self.cutoff)
                pieces.append(edges.to(pos.device) + start)
                start += count
            source, target = torch.cat(pieces, dim=1)
            distance = (pos[source] - pos[target]).norm(dim=-1)
            order = torch.argsort(distance, stable=True)
            order = order[torch.argsort(target[order], stable=True)]  # by target, nearest first
            source, target = source[order], target[order]
            counts = torch.bincount(target, minlength=len(pos))
            first = torch.cumsum(counts, 0) - counts  # each target's first edge
            keep = torch.arange(len(target), device=pos.device) - first[target] < self.max_num_neighbors
            source, target = source[keep], target[keep]
            if self.add_self_loops:
                loops = torch.arange(len(pos), device=pos.device)
                source, target = torch.cat([source, loops]), torch.cat([target, loops])
        edge_index = torch.stack([source, target])
        vec = pos[source] - pos[target]  # ViSNetBlock normalises this in place: weight is computed apart
        pair = source != target
        weight = torch.zeros_like(vec[:, 0])
        weight[pair] = (pos[source[pair]] - pos[target[pair]]).norm(dim=-1)  # no norm at 0 (NaN gradient)
        return edge_index, weight, vec


class _FreeCGViSMixin:
    """The FreeCG overrides of ``ViS_MP``'s ``forward`` and ``message`` (host lines kept as is)."""

    freecg: FreeCGLayer
    smooth_cutoff: bool

    def forward(self, x: Tensor, vec: Tensor, edge_index: Tensor, r_ij: Tensor, f_ij: Tensor, d_ij: Tensor):
        x = self.layernorm(x)
        vec = self.vec_layernorm(vec)
        q = self.q_proj(x).reshape(-1, self.num_heads, self.head_dim)
        k = self.k_proj(x).reshape(-1, self.num_heads, self.head_dim)
        v = self.v_proj(x).reshape(-1, self.num_heads, self.head_dim)
        dk = self.act(self.dk_proj(f_ij)).reshape(-1, self.num_heads, self.head_dim)
        dv = self.act(self.dv_proj(f_ij)).reshape(-1, self.num_heads, self.head_dim)
        vec1, vec2, vec3 = torch.split(self.vec_proj(vec), self.hidden_channels, dim=-1)
        vec_dot = (vec1 * vec2).sum(dim=1)
        enhancer_bias = self.freecg.edge_bias(vec, d_ij, edge_index[0]) if self.freecg.enhancer is not None else None
        x, vec_out = self.propagate(edge_index, q=q, k=k, v=v, dk=dk, dv=dv, vec=vec, r_ij=r_ij, d_ij=d_ij, enhancer_bias=enhancer_bias)
        o1, o2, o3 = torch.split(self.o_proj(x), self.hidden_channels, dim=1)
        dx = vec_dot * o2 + o3
        dvec = self.freecg(vec_out, vec3 * o1.unsqueeze(1))  # FreeCG write-back
        if self.last_layer:
            return dx, dvec, None
        return dx, dvec, self.edge_updater(edge_index, vec=vec, d_ij=d_ij, f_ij=f_ij)

    def message(
        self,
        q_i: Tensor,
        k_j: Tensor,
        v_j: Tensor,
        vec_j: Tensor,
        dk: Tensor,
        dv: Tensor,
        r_ij: Tensor,
        d_ij: Tensor,
        enhancer_bias: Optional[Tensor],
    ):
        attn = (q_i * k_j * dk).sum(dim=-1)
        if enhancer_bias is not None:
            attn = attn + enhancer_bias  # attention enhancer
        attn = self.attn_activation(attn) * self.cutoff(r_ij).unsqueeze(1)
        v_j = (v_j * dv * attn.unsqueeze(2)).view(-1, self.hidden_channels)
        s1, s2 = torch.split(self.act(self.s_proj(v_j)), self.hidden_channels, dim=1)
        vec_j = vec_j * s1.unsqueeze(1) + s2.unsqueeze(1) * d_ij.unsqueeze(2)
        if self.smooth_cutoff:  # the host's vector message does not vanish at the cutoff
            vec_j = vec_j * self.cutoff(r_ij).view(-1, 1, 1)
        return v_j, vec_j


class FreeCGViS_MP(_FreeCGViSMixin, ViS_MP):
    """``ViS_MP`` with FreeCG; takes ``ViS_MP``'s arguments plus ``freecg`` (a :class:`FreeCGLayer`)
    and ``smooth_cutoff`` (multiply the vector message by the cutoff function)."""

    def __init__(self, freecg: FreeCGLayer, smooth_cutoff: bool = True, **host: Any) -> None:
        super().__init__(**host)
        self.freecg = freecg
        self.smooth_cutoff = smooth_cutoff


class FreeCGViS_MP_Vertex(_FreeCGViSMixin, ViS_MP_Vertex):
    """``ViS_MP_Vertex`` with FreeCG; takes its arguments plus ``freecg`` and ``smooth_cutoff``."""

    def __init__(self, freecg: FreeCGLayer, smooth_cutoff: bool = True, **host: Any) -> None:
        super().__init__(**host)
        self.freecg = freecg
        self.smooth_cutoff = smooth_cutoff


def splice_visnet(
    model: ViSNet,
    freecg: Optional[Mapping[str, Any]] = None,
    layers: Optional[Sequence[int]] = None,
    identity_start: bool = True,
    smooth_cutoff: Optional[bool] = None,
) -> ViSNet:
    """Put FreeCG into an existing ViSNet (in place, keeping its weights) and return it.

    Args:
        model: a ``torch_geometric.nn.models.ViSNet``.
        freecg: FreeCG settings as a mapping (``groups``, ``shuffle``, ``shift``, ``enhancer``,
            ``group_cg``, ``paths``, ``symmetry``...). The host sets ``irreps`` (``1o+2e`` for
            lmax 2), ``channels`` (hidden_channels) and ``enhancer_out`` (heads); ``groups``
            defaults to hidden_channels / 8.
        layers: which interaction layers get FreeCG (default all).
        identity_start: keep the host's self-update term (``dvec = vec_out + vec3 * o1 + T``) and
            make sure the FreeCG term T starts at zero (the default zero weights do it; with a
            gate, the closed gate does), so the model computes exactly what it did until
            fine-tuned. ``False``: the settings decide (``keep_self_update: false`` is the paper's
            write-back ``vec_out + T``).
        smooth_cutoff: multiply the vector message by the cutoff function so the energy is
            continuous at the cutoff (see the module notes). Default: ``not identity_start``.

    The graph module is replaced by :class:`RadiusGraph` (same contract, no pyg-lib needed).
    """
    block = model.representation_model
    host = {
        "irreps": "1o+2e" if block.lmax == 2 else "1o",
        "channels": block.hidden_channels,
        "enhancer_out": block.num_heads,
        "enhancer_per_channel": False,
    }
    if identity_start:
        host.update(host_start(freecg), keep_self_update=True)
    config = FreeCGConfig.for_host(freecg, host)
    chosen = list(range(len(block.vis_mp_layers))) if layers is None else [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < len(block.vis_mp_layers)]
    if bad:
        raise ValueError(f"FreeCG layers {bad} out of range for {len(block.vis_mp_layers)} ViSNet layers")
    for i in chosen:
        old = block.vis_mp_layers[i]
        if isinstance(old, _FreeCGViSMixin):
            raise ValueError(f"ViSNet layer {i} already has FreeCG")
        cls = FreeCGViS_MP_Vertex if isinstance(old, ViS_MP_Vertex) else FreeCGViS_MP
        new = cls(
            FreeCGLayer(config),
            smooth_cutoff=(not identity_start) if smooth_cutoff is None else smooth_cutoff,
            num_heads=old.num_heads,
            hidden_channels=old.hidden_channels,
            cutoff=old.cutoff.cutoff,
            vecnorm_type=old.vec_layernorm.norm_type,
            trainable_vecnorm=isinstance(old.vec_layernorm.weight, nn.Parameter),
            last_layer=old.last_layer,
        )
        missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
        if unexpected or any(not key.startswith("freecg.") for key in missing):
            raise RuntimeError(f"ViSNet layer {i}: state does not map onto the FreeCG layer ({missing}, {unexpected})")
        block.vis_mp_layers[i] = new.to(next(old.parameters()))
    block.distance = RadiusGraph(block.cutoff, block.max_num_neighbors)
    return model


def build_visnet_freecg(freecg: Optional[Mapping[str, Any]] = None, layers: Optional[Sequence[int]] = None, **visnet: Any) -> ViSNet:
    """A ``ViSNet(**visnet)`` with FreeCG in ``layers`` (default all), built from scratch, with a
    vector message that vanishes at the cutoff. With the default settings it starts as
    :func:`build_visnet` with the same seed; ``freecg=PAPER_LAYER`` (plus sizes) is the paper's
    model, write-back ``vec_out + shuffle(P)``.

    Args:
        freecg: FreeCG settings (see :func:`splice_visnet` and :class:`FreeCGConfig`).
        layers: which layers get FreeCG.
        **visnet: every ``ViSNet`` argument (the paper: ``lmax=2, num_heads=8, num_layers=9,
            hidden_channels=256, num_rbf=32, cutoff=5.0, max_num_neighbors=32, derivative=True``).
    """
    return splice_visnet(ViSNet(**visnet), freecg, layers, identity_start=False)


NO_FREECG = {"group_cg": False, "shuffle": False, "enhancer": False}
"""Every FreeCG part off: the layer is ViSNet's own ``vec_out + vec3 * o1`` (no parameters)."""


def build_visnet(**visnet: Any) -> ViSNet:
    """A bare ``ViSNet(**visnet)`` whose vector message vanishes at the cutoff, the host that
    :func:`build_visnet_freecg` is compared with: the same layers with every FreeCG part off,
    so that the two differ by FreeCG alone (same parameters, same random draws)."""
    return splice_visnet(ViSNet(**visnet), NO_FREECG, identity_start=False, smooth_cutoff=True)


class ViSNetPotential(nn.Module):
    """A (FreeCG-)ViSNet evaluated on an explicit graph, so periodic cells work.

    PyG's ``ViSNet.forward(z, pos, batch)`` builds its own (non-periodic) graph. This module runs
    the same submodules in the same order as ``ViSNetBlock.forward`` and ``ViSNet.forward`` on a
    graph given by the caller (e.g. :func:`freecg_plugin.neighbors.neighbor_list`), adding the
    host's zero-length self-loops itself. Host behaviour kept: ViSNet's neighbour embedding drops
    edges whose two ends are the same atom, which in cells smaller than the cutoff also drops
    periodic images of the atom itself. No ``max_num_neighbors`` cap is applied to given graphs.

    Shapes:
        numbers ``[N]``, positions ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (source j,
        target i, no self-loops), edge_vec ``[E, 3]`` (``r_j - r_i`` with periodic shifts)
        -> energy ``[num_graphs]``.
    """

    def __init__(self, visnet: ViSNet) -> None:
        super().__init__()
        self.visnet = visnet

    def features(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor) -> Tuple[Tensor, Tensor]:
        """The final per-atom features: scalars ``x [N, H]`` and ``vec [N, (lmax + 1)^2 - 1, H]``
        (l = 1 first, Cartesian x, y, z), after ViSNet's output norms."""
        rep = self.visnet.representation_model
        n = numbers.shape[0]
        loops = torch.arange(n, device=numbers.device)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        length = edge_vec.norm(dim=-1)
        edge_weight = torch.cat([length, length.new_zeros(n)])
        direction = torch.cat([edge_vec / length.unsqueeze(1), edge_vec.new_zeros(n, 3)])
        x = rep.embedding(numbers)
        edge_attr = rep.distance_expansion(edge_weight)
        sh = rep.sphere(direction)
        x = rep.neighbor_embedding(numbers, x, edge_index, edge_weight, edge_attr)
        vec = x.new_zeros(n, (rep.lmax + 1) ** 2 - 1, x.shape[1])
        edge_attr = rep.edge_embedding(edge_index, edge_attr, x)
        for layer in rep.vis_mp_layers:
            dx, dvec, dedge = layer(x, vec, edge_index, edge_weight, edge_attr, sh)
            x, vec = x + dx, vec + dvec
            if dedge is not None:
                edge_attr = edge_attr + dedge
        return rep.out_norm(x), rep.vec_out_norm(vec)

    def forward(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor, num_graphs: int) -> Tensor:
        x, vec = self.features(numbers, positions, batch, edge_index, edge_vec)
        model = self.visnet
        atomic = model.output_model.pre_reduce(x, vec) * model.std
        if model.prior_model is not None:
            atomic = model.prior_model(atomic, numbers)
        energy = atomic.new_zeros(num_graphs, atomic.shape[1]).index_add(0, batch, atomic)
        if model.reduce_op == "mean":
            energy = energy / torch.bincount(batch, minlength=num_graphs).clamp_min(1).unsqueeze(1)
        return (energy + model.mean).squeeze(1)
