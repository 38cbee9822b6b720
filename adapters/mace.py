"""FreeCG in MACE (``mace-torch`` 0.3.16, in an environment of its own: it pins e3nn 0.4.4, which
NequIP refuses).

Where the layer goes. Each interaction block sums its edge messages into a per-atom tensor
``[N, C, (max_ell+1)^2]`` (``max_ell`` the degree of the edge harmonics, 3 by default: irreps
``0e+1o+2e+3o`` per channel) and hands it to the product basis (the symmetric contraction). That
sum is FreeCG's abstract-edge input A; the block is wrapped so that A goes through the layer on
its way to the product basis, with its irreps kept:

* **B**, the second operand: MACE's ``B`` is the product basis, computed after the message, so
  FreeCG's B is the node features entering the block, mapped by a learnt equivariant linear map
  (e3nn's ``Linear``) into the message's irreps. In the first block the node features are
  scalars only (the element embedding), so B carries scalars there and the group CG reduces to
  scalar-gated mixing of the abstract edges; later blocks see MACE's hidden irreps (``0e+1o``
  for ``max_L = 1``). B's components of higher degree (``2e``, ``3o``) are therefore always zero,
  and the group CG's default paths are those whose second operand B has: 4 of the 23 paths of
  ``0e+1o+2e+3o`` in the first block, 10 in the others (the other paths would multiply zeros:
  the same functions, at about half the cost and weights; the layer's normalisation, by the
  number of paths into each output irrep, no longer counts them).
* **Enhancer**: the invariant ``b_ij = Linear(sum_m B_j[m] Y_ij[m])`` scales the radial MLP's
  tensor-product weights, ``W_ij (1 + b_ij)``, one bias per channel shared by the block's CG paths
  (or, with a smaller ``enhancer_out``, one per block of ``channels / enhancer_out`` neighbouring
  channels: the linear map then runs per atom and far less is gathered per edge), before MACE
  multiplies by its cutoff envelope (or, with its default ``apply_cutoff``, where the radial
  features already vanish at ``r_max`` and e3nn's bias-free MLP with them): the energy stays
  smooth as a neighbour crosses the cutoff.
* **Body order**: the FreeCG term is a product of the message with B before the symmetric
  contraction, so the product basis sees features of one more body order than MACE's own.

The write-back is ``A + T`` (MACE keeps its own residual ``sc``); with zero FreeCG weights (the
default) or a closed gate, the wrapped model computes exactly what MACE did, built from scratch
or spliced into a trained model. MACE's LAMMPS (ML-IAP) path and fused convolutions are not wrapped.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from e3nn import o3
from mace.modules.blocks import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock
from mace.modules.models import MACE
from mace.tools.scatter import scatter_sum
from torch import Tensor, nn

from freecg_plugin.nn import FreeCGConfig, FreeCGLayer, enumerate_paths, host_start, path_scales

__all__ = ["FreeCGMACEInteraction", "MACEPotential", "build_mace", "build_mace_freecg", "splice_mace"]

BLOCKS = (RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock)
"""The interaction blocks FreeCG wraps (MACE's defaults: the first, then the residual one)."""


class FreeCGMACEInteraction(nn.Module):
    """A MACE interaction block with FreeCG on its summed message (same signature and outputs).

    Shapes:
        as the block: ``node_feats [N, hidden irreps]`` ... -> ``([N, C, (max_ell+1)^2], sc)``.
    """

    def __init__(self, block: nn.Module, freecg: FreeCGLayer) -> None:
        super().__init__()
        if hasattr(block, "conv_fusion"):
            raise ValueError("splice_mace: MACE's fused convolution (conv_fusion) is not supported")
        self.block = block
        self.freecg = freecg
        self.residual = isinstance(block, RealAgnosticResidualInteractionBlock)
        self.operand = o3.Linear(block.node_feats_irreps, block.irreps_out)  # B in the message's irreps
        channels, biases = freecg.config.channels, freecg.config.enhancer_out
        if channels % biases:
            raise ValueError(f"enhancer_out {biases} does not divide MACE's {channels} channels")
        self.channels_per_bias = channels // biases
        self.tp_paths = block.conv_tp.weight_numel // channels  # MACE's edge weights are [tp_paths, channels] per edge

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's signature)
        # Models saved while the default was every path (until 2026-12-06) hold the group CG's
        # weights for every path of the message's irreps. The dropped paths multiplied B's zero
        # components; the kept ones are rescaled for their output's smaller fan-in (the layer
        # normalises by the number of paths into each output irrep): the same function loads.
        key = prefix + "freecg.group_cg.weight"
        group_cg = self.freecg.group_cg
        if group_cg is not None and key in state_dict and state_dict[key].shape[1] != len(group_cg.paths):
            every = enumerate_paths(self.block.edge_attrs_irreps)
            if state_dict[key].shape[1] == len(every) and set(group_cg.paths) <= set(every):
                k = group_cg.edges_per_group
                saved = dict(zip(every, path_scales(every, k)))
                scale = torch.tensor([saved[p] / now for p, now in zip(group_cg.paths, path_scales(group_cg.paths, k))])
                weight = state_dict[key][:, [every.index(p) for p in group_cg.paths]]
                state_dict[key] = weight * scale.to(weight.dtype).view(1, -1, 1, 1, 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        node_attrs: Tensor,
        node_feats: Tensor,
        edge_attrs: Tensor,
        edge_feats: Tensor,
        edge_index: Tensor,
        cutoff: Optional[Tensor] = None,
        lammps_class: Optional[Any] = None,
        lammps_natoms: Tuple[int, int] = (0, 0),
        first_layer: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        if lammps_class is not None:
            raise RuntimeError("MACE + FreeCG does not run MACE's LAMMPS (ML-IAP) path")
        block = self.block
        sender, receiver = edge_index[0], edge_index[1]
        sc = block.skip_tp(node_feats, node_attrs) if self.residual else None
        b = block.reshape(self.operand(node_feats)).transpose(1, 2)  # [N, D, C]
        weights = block.conv_tp_weights(edge_feats)
        if self.freecg.enhancer is not None:
            bias = self.freecg.edge_bias(b, edge_attrs, sender)  # [E, enhancer_out]
            if self.channels_per_bias > 1:
                bias = bias.repeat_interleave(self.channels_per_bias, dim=1)
            weights = (weights.view(weights.shape[0], self.tp_paths, -1) * (1.0 + bias).unsqueeze(1)).flatten(1)
        if cutoff is not None:
            weights = weights * cutoff
        up = block.linear_up(node_feats)
        message = scatter_sum(block.conv_tp(up[sender], edge_attrs, weights), receiver, dim=0, dim_size=node_feats.shape[0])
        message = block.linear(message) / block.avg_num_neighbors
        if not self.residual:
            message = block.skip_tp(message, node_attrs)
        a = block.reshape(message).transpose(1, 2)  # [N, D, C]
        return self.freecg(a, b).transpose(1, 2), sc


def splice_mace(
    model: MACE, freecg: Optional[Mapping[str, Any]] = None, layers: Optional[Sequence[int]] = None, identity_start: bool = True
) -> MACE:
    """Put FreeCG into a MACE model (in place, keeping its weights) and return it.

    Args:
        model: a ``mace.modules.MACE`` (or ``ScaleShiftMACE``) with MACE's default interaction blocks.
        freecg: FreeCG settings as a mapping (``groups``, ``shuffle``, ``shift``, ``enhancer``,
            ``group_cg``, ``paths``...). The host sets ``irreps`` (the edge harmonics',
            ``0e+1o+...`` up to ``max_ell``), ``channels`` and ``symmetry`` (``O3``);
            ``groups`` default to channels / 8, ``enhancer_out`` to channels (one bias per
            channel; a divisor of channels shares each bias among neighbouring channels) and
            ``paths`` to those whose second operand is an irrep of the block's node features.
        layers: which interactions get FreeCG (default all).
        identity_start: the model's outputs are unchanged until trained (the default zero weights
            do it; with a gate, the closed gate does).

    Raises:
        ValueError: a model that is not MACE, an interaction block of another kind, layers out of
            range, or FreeCG already there.
    """
    if not isinstance(model, MACE):
        raise ValueError(f"splice_mace: expected a mace.modules.MACE, got {type(model).__name__}")
    chosen = list(range(len(model.interactions))) if layers is None else [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < len(model.interactions)]
    if bad:
        raise ValueError(f"FreeCG layers {bad} out of range for {len(model.interactions)} interactions")
    with torch.random.fork_rng(devices=[]):  # what the caller builds next draws what it would without FreeCG
        for i in chosen:
            block = model.interactions[i]
            if isinstance(block, FreeCGMACEInteraction):
                raise ValueError(f"MACE interaction {i} already has FreeCG")
            if type(block) not in BLOCKS:
                raise ValueError(f"splice_mace: interaction {i} is a {type(block).__name__}; FreeCG wraps {[b.__name__ for b in BLOCKS]}")
            (channels,) = {mul for mul, _ in block.irreps_out}
            host = dict(irreps=str(block.edge_attrs_irreps), channels=channels, symmetry="O3", keep_self_update=False)
            if identity_start:
                host.update(host_start(freecg))
            operand = {ir for _, ir in block.node_feats_irreps}
            paths = [str(p) for p in enumerate_paths(block.edge_attrs_irreps) if p.irreps[1] in operand]
            layer = FreeCGLayer(FreeCGConfig.for_host(freecg, host, enhancer_out=channels, paths=paths))
            model.interactions[i] = FreeCGMACEInteraction(block, layer).to(next(block.parameters()).dtype)
    return model


def build_mace(
    elements: Sequence[int],
    cutoff: float,
    avg_num_neighbors: float,
    channels: int = 128,
    max_L: int = 1,
    max_ell: int = 3,
    correlation: int = 3,
    num_interactions: int = 2,
    num_bessel: int = 8,
    num_polynomial_cutoff: int = 5,
    radial_MLP: Sequence[int] = (64, 64, 64),
    MLP_irreps: str = "16x0e",
) -> MACE:
    """A bare MACE as ``mace_run_train`` builds it (first block ``RealAgnosticInteractionBlock``,
    then ``RealAgnosticResidualInteractionBlock``; Bessel radial basis, SiLU gate), with zero
    atomic energies (:class:`MACEPotential` scales and shifts).

    Args:
        elements: atomic numbers the model knows.
        cutoff: ``r_max`` in Å.
        avg_num_neighbors: MACE divides the summed message by it.
        channels: the hidden features' channels (MACE's ``num_channels``).
        max_L: the hidden features' highest degree (``hidden_irreps`` ``Cx0e+Cx1o`` for 1).
        max_ell: the edge harmonics' degree (the message's irreps go up to it).
        correlation: the product basis' body order.
        num_interactions: interaction blocks.
        num_bessel, num_polynomial_cutoff: the radial basis and its cutoff envelope.
        radial_MLP: the radial MLP's hidden widths.
        MLP_irreps: the last readout's hidden irreps.
    """
    from mace import modules

    hidden = o3.Irreps("+".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(max_L + 1)))
    return MACE(
        r_max=float(cutoff),
        num_bessel=int(num_bessel),
        num_polynomial_cutoff=int(num_polynomial_cutoff),
        max_ell=int(max_ell),
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=int(num_interactions),
        num_elements=len(elements),
        hidden_irreps=hidden,
        MLP_irreps=o3.Irreps(MLP_irreps),
        atomic_energies=np.zeros(len(elements)),
        avg_num_neighbors=float(avg_num_neighbors),
        atomic_numbers=[int(z) for z in elements],
        correlation=int(correlation),
        gate=torch.nn.functional.silu,
        radial_MLP=[int(w) for w in radial_MLP],
    )


def build_mace_freecg(freecg: Optional[Mapping[str, Any]], layers: Optional[Sequence[int]] = None, **mace_args: Any) -> MACE:
    """:func:`build_mace` with FreeCG in ``layers`` (default all), drawn after MACE's own weights
    from a forked random stream: with one seed, MACE + FreeCG starts from exactly MACE's weights."""
    return splice_mace(build_mace(**mace_args), freecg, layers, identity_start=False)


class MACEPotential(nn.Module):
    """A MACE model on an explicit graph: the interface of :func:`freecg_plugin.atomistic.evaluate`,
    so that the project's trainer trains MACE, bare or with FreeCG, as it trains every host.
    ``energy = std * E_MACE + mean``.

    The graph's edge vectors go into MACE as its periodic shifts with every position at the origin:
    MACE's ``r_receiver - r_sender + shift`` is then exactly the given vector, and forces and
    stress come from differentiating it (as for the other hosts). MACE's receiver is our source.

    Shapes:
        numbers ``[N]``, positions ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]``, edge_vec
        ``[E, 3]`` -> energy ``[num_graphs]``.
    """

    def __init__(self, model: MACE, elements: Sequence[int], mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.model = model
        index = torch.full((max(elements) + 1,), -1, dtype=torch.long)
        index[torch.tensor(list(elements))] = torch.arange(len(elements))
        self.register_buffer("element_index", index, persistent=False)
        self.num_elements = len(elements)
        self.mean, self.std = float(mean), float(std)

    def forward(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor, num_graphs: int) -> Tensor:
        counts = torch.bincount(batch, minlength=num_graphs)
        data = {
            "positions": torch.zeros_like(positions, requires_grad=True),
            "node_attrs": nn.functional.one_hot(self.element_index[numbers], self.num_elements).to(edge_vec.dtype),
            "edge_index": edge_index.flip(0),
            "shifts": edge_vec,
            "batch": batch,
            "ptr": torch.cat([counts.new_zeros(1), counts.cumsum(0)]),
            "cell": edge_vec.new_zeros(num_graphs, 3, 3),
        }
        energy = self.model(data, training=self.training, compute_force=False)["energy"]
        return self.std * energy + self.mean
