"""FreeCG modules for NequIP 0.19 and Allegro 0.8 (packaging-safe: torch, e3nn privates, nequip.nn).

``nequip-package`` interns this file into ``.nequip.zip`` archives, so it imports nothing that
drags in application code (no ``nequip.model``, no ``from e3nn import o3``, no hydra); the
builders live apart in :mod:`freecg_plugin.adapters.nequip_models`.

* **NequIP** — :class:`FreeCGTensorProductScatter` wraps an ``InteractionBlock``'s
  ``TensorProductScatter``, whose output is the block's aggregated message
  ``M_i = sum_j TP(x_j, Y_ij; R(r_ij))`` in the irreps ``irreps_mid`` (one block per ``uvu``
  path). Those irreps repeat (``0e`` from ``0e x 0e`` and from ``1o x 1o``, ...) and their
  multiplicities differ by l, so an equivariant linear map reads ``M_i`` as ``C`` abstract edges
  ``A_i`` of irreps ``0e+1o+2e...`` (spherical-harmonic parity, up to the messages' lmax), and another
  reads the atom's own features ``x_i`` as the second operand ``B_i``. The update
  ``L(shuffle(GroupCG(A_i, B_i)))`` is added to ``M_i`` (``L`` maps back to ``irreps_mid``), so
  ``linear_2``, the self-connection and the gate downstream are the host's own. Why here and not
  after the block: the aggregated message is what FreeCG is about (a permutation-invariant sum,
  before the host mixes it with the self-connection), and wrapping the scatter touches no host
  forward code. Enhancer: ``R(r_ij) (1 + b_ij)`` with ``b_ij = Linear(sum_m B_j[m] Y_ij[m])``
  over the TP weights; it vanishes at the cutoff with ``R`` (the host's radial MLP has no bias
  and its input carries the polynomial cutoff).
* **Allegro** — :class:`FreeCGEnvironmentContracter` wraps a layer's ``Contracter``, whose second
  input is the atom's environment ``A_i = sum_j w(r_ij) Y_ij`` (strided ``[N, C, dim]``, one SH
  copy per channel): that is already C abstract edges. Allegro carries no per-atom state, so the
  environment is coupled with itself, ``A_i + shuffle(GroupCG(A_i, A_i))``, a two-neighbour
  (three-body) term computed per atom. It stays strictly local. Allegro has no per-neighbour node
  features, so it takes no enhancer.
"""

from __future__ import annotations

import math

import torch
from e3nn.o3._irreps import Irreps
from e3nn.o3._linear import Linear
from torch import Tensor, nn

from freecg_plugin.nn import FreeCGLayer
from freecg_plugin.nn._irreps import spherical_irreps

__all__ = ["FreeCGEnvironmentContracter", "FreeCGTensorProductScatter", "NequIPPotential", "freecg_irreps"]


def freecg_irreps(message_irreps: Irreps, sh_irreps: Irreps) -> Irreps:
    """The abstract-edge irreps for a host's messages: ``0e+1o+2e...`` up to the lmax of both.

    Raises:
        ValueError: if the harmonics are not ``0e+1o+...`` (one copy each, spherical-harmonic
            parity) or the messages carry no l >= 1.
    """
    sh_irreps = Irreps(sh_irreps)
    if sh_irreps != Irreps(spherical_irreps(sh_irreps.lmax)):
        raise ValueError(f"FreeCG needs edge harmonics 0e+1o+2e+..., got {sh_irreps}")
    lmax = min(Irreps(message_irreps).lmax, sh_irreps.lmax)
    if lmax < 1:
        raise ValueError(f"FreeCG needs messages with l >= 1, got {message_irreps}")
    return Irreps(spherical_irreps(lmax))


class FreeCGTensorProductScatter(nn.Module):
    """NequIP's ``TensorProductScatter`` with FreeCG on the aggregated messages (same signature).

    Args:
        tp_scatter: the host's ``TensorProductScatter`` (kept, weights and all).
        freecg: a :class:`FreeCGLayer` whose ``irreps`` is :func:`freecg_irreps` of the scatter.
        feature_irreps_in: irreps of the node features ``x`` that enter the scatter.

    Shapes: ``x [N, feature_irreps_in.dim]``, ``edge_attr [E, sh.dim]``,
    ``edge_weight [E, tp.weight_numel]``, ``edge_dst``, ``edge_src [E]`` -> ``[N, irreps_mid.dim]``.
    """

    def __init__(self, tp_scatter: nn.Module, freecg: FreeCGLayer, feature_irreps_in: Irreps | str) -> None:
        super().__init__()
        self.tp_scatter = tp_scatter
        self.freecg = freecg
        irreps_mid = Irreps(tp_scatter.irreps_mid)
        builder = freecg.builder
        edge_irreps = Irreps([(builder.channels, ir) for _, ir in builder.irreps])
        self.dim = builder.dim
        self.channels = builder.channels
        self.use_enhancer = freecg.enhancer is not None
        use_group_cg = freecg.group_cg is not None
        # the enhancer's bias covers every TP edge weight, or one per channel shared by the TP's paths
        self.bias_blocks, self.bias_width = 1, tp_scatter.tp.weight_numel
        if self.use_enhancer:
            out, numel = freecg.enhancer.linear.out_features, tp_scatter.tp.weight_numel
            sizes = {math.prod(ins.path_shape) for ins in tp_scatter.tp.instructions if ins.has_weight}
            if out != numel and sizes != {out}:
                raise ValueError(f"enhancer_out {out}: neither the TP's {numel} edge weights nor its paths' {sorted(sizes)} channels")
            self.bias_blocks, self.bias_width = numel // out, out
        self.state_in = Linear(Irreps(feature_irreps_in), edge_irreps)
        self.messages_in = Linear(irreps_mid, edge_irreps) if use_group_cg else None
        self.products_out = Linear(edge_irreps, irreps_mid) if use_group_cg else None

    def forward(self, x: Tensor, edge_attr: Tensor, edge_weight: Tensor, edge_dst: Tensor, edge_src: Tensor) -> Tensor:
        freecg = self.freecg
        state = freecg.builder.from_mul_ir(self.state_in(x))  # B: [N, G, K, dim]
        if self.use_enhancer:
            per_atom = state.reshape(state.shape[0], self.channels, self.dim).transpose(1, 2)
            bias = freecg.edge_bias(per_atom, edge_attr[:, : self.dim], edge_src)
            blocks = edge_weight.view(edge_weight.shape[0], self.bias_blocks, self.bias_width)  # explicit sizes: no edges is fine too
            edge_weight = (blocks * (1.0 + bias[:, None, :])).view(edge_weight.shape)
        messages = self.tp_scatter(x, edge_attr, edge_weight, edge_dst, edge_src)
        messages_in, products_out = self.messages_in, self.products_out
        if messages_in is None or products_out is None:
            return messages
        products = freecg.transform(freecg.builder.from_mul_ir(messages_in(messages)), state)
        return messages + products_out(freecg.builder.to_mul_ir(products))


class FreeCGEnvironmentContracter(nn.Module):
    """An Allegro ``Contracter`` whose environment input first passes through FreeCG.

    Shapes: ``x1 [E, C, dim1]`` (edge tensor track), ``x2 [N, C, dim]`` (environment),
    ``idxs [E]`` (centre atoms) -> the contracter's output.
    """

    def __init__(self, contracter: nn.Module, freecg: FreeCGLayer) -> None:
        super().__init__()
        if freecg.group_cg is None:
            raise ValueError("FreeCG in Allegro is the group CG on the environment: group_cg must be on")
        if freecg.enhancer is not None:
            raise ValueError("Allegro has no per-neighbour atom features for the enhancer: set enhancer: false")
        self.contracter = contracter
        self.freecg = freecg
        builder = freecg.builder
        self.groups, self.edges_per_group, self.dim = builder.groups, builder.edges_per_group, builder.dim

    def forward(self, x1: Tensor, x2: Tensor, idxs: Tensor) -> Tensor:
        n = x2.shape[0]
        environment = x2.reshape(n, self.groups, self.edges_per_group, self.dim)
        environment = environment + self.freecg.transform(environment, environment)
        return self.contracter(x1, environment.reshape(n, self.groups * self.edges_per_group, self.dim), idxs)


class NequIPPotential(nn.Module):
    """A nequip energy model (no derivative module) on an explicit graph.

    The interface of :func:`freecg_plugin.atomistic.evaluate`, so that the project's trainer
    trains NequIP and Allegro, bare or with FreeCG, exactly as it trains ViSNet; forces and stress
    come from the trainer's autograd. ``energy = std * E_model + mean``.

    Args:
        energy_model: nequip's ``SequentialGraphNetwork`` (``ForceStressOutput.func``).
        elements: atomic numbers in the order of the model's ``type_names``.

    Shapes:
        numbers ``[N]``, positions ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (source j,
        target i), edge_vec ``[E, 3]`` (``r_j - r_i`` with periodic shifts) -> energy ``[num_graphs]``.
    """

    def __init__(self, energy_model: nn.Module, elements: list, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.energy_model = energy_model
        type_of = torch.full((max(elements) + 1,), -1, dtype=torch.long)
        type_of[torch.tensor(elements)] = torch.arange(len(elements))
        self.register_buffer("type_of", type_of)
        self.mean, self.std = float(mean), float(std)

    def forward(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor, num_graphs: int) -> Tensor:
        data = {
            "pos": positions,
            "atom_types": self.type_of[numbers],
            "edge_index": torch.stack([edge_index[1], edge_index[0]]),  # nequip: [centre i, neighbour j]
            "edge_vectors": edge_vec,
            "batch": batch,
            "num_atoms": torch.bincount(batch, minlength=num_graphs),
        }
        energy = self.energy_model(data)["total_energy"].reshape(-1)
        return energy * self.std + self.mean
