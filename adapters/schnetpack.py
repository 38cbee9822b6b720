"""FreeCG in SchNetPack 2.2: PaiNN and SO3net.

Where the layer goes:

* **PaiNN**: each ``PaiNNInteraction`` is wrapped. Its aggregated messages ``dq [N,1,F]`` and
  ``dmu [N,3,F]`` are read as abstract edges with irreps ``0e+1o``; the second operand is the
  atom's current state ``(q, mu)``. PaiNN has only odd vectors, and with parity ``1o x 1o -> 1o``
  does not exist, so the group CG uses the four parity-safe paths ``0e x 0e -> 0e``,
  ``0e x 1o -> 1o``, ``1o x 0e -> 1o`` and ``1o x 1o -> 0e``: scalars gate vectors and vector
  pairs make scalars. The model stays O(3)-equivariant.
* **SO3net**: each ``SO3Convolution`` is wrapped. Its output (the scatter-summed messages,
  ``[N,(lmax+1)^2,F]``) and the atom's state are moved to e3nn's basis by an exact orthogonal
  change of basis per l (:func:`spk_to_e3nn_basis`), transformed, and moved back. SchNetPack's
  real CG coefficients vanish whenever l1 + l2 + l3 is odd (they are the real part of the
  complex ones), so SO3net is in fact O(3)-equivariant with irreps ``0e+1o+2e+...``; FreeCG keeps
  that with ``symmetry="O3"`` (parity-respecting paths only).
* **Enhancer** (neither host has attention): the invariant ``Linear(sum_m x_j[m] Y_ij[m])`` is
  added to the per-edge filter in proportion to it, ``W_ij (1 + b_ij)``, so it inherits the
  filter's cutoff envelope and vanishes smoothly at the cutoff: one bias per filter entry (PaiNN:
  3 x channels; SO3net: one per channel, applied per l before SchNetPack spreads the filter over
  its CG entries). The dot product is invariant in any orthonormal SH basis, so SO3net's native
  basis is used there.

The write-back is ``A + T`` with T the FreeCG term: no extra self-update term, PaiNN and SO3net add
the residual themselves. With zero FreeCG weights (the default) or a closed gate, the wrapped model
computes exactly what the host did, built from scratch or spliced.

Everything here stays ``torch.jit.script``-able (``spkdeploy`` uses TorchScript).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import schnetpack.properties as properties
import torch
from schnetpack.nn import build_mlp, scatter_add
from schnetpack.nn.so3 import RealSphericalHarmonics, SO3Convolution
from schnetpack.representation import PaiNN, SO3net
from schnetpack.representation.painn import PaiNNInteraction
from torch import Tensor, nn

from freecg_plugin.nn import FreeCGConfig, FreeCGLayer, host_start
from freecg_plugin.nn._constants import ExactBuffers
from freecg_plugin.nn._irreps import spherical_irreps

__all__ = [
    "FreeCGPaiNNInteraction",
    "FreeCGSO3Convolution",
    "PaiNNFreeCG",
    "PAINN_PATHS",
    "SO3netFreeCG",
    "spk_to_e3nn_basis",
    "splice_painn",
    "splice_so3net",
]

PAINN_PATHS = ("0e x 0e -> 0e", "0e x 1o -> 1o", "1o x 0e -> 1o", "1o x 1o -> 0e")
"""The parity-safe paths for PaiNN's scalars + odd vectors."""


def _wrap(entries: nn.ModuleList, wrapper: type, config: FreeCGConfig, layers: Optional[Sequence[int]], what: str) -> None:
    """Replace the chosen ``entries[i]`` by ``wrapper(entries[i], FreeCGLayer(config))`` in place.

    The new weights are drawn from a forked random stream, so that whatever the caller builds
    next (e.g. the energy head) draws what it would have drawn without FreeCG: with one seed,
    host + FreeCG starts from exactly the host's weights.
    """
    chosen = list(range(len(entries))) if layers is None else [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < len(entries)]
    if bad:
        raise ValueError(f"FreeCG layers {bad} out of range for {len(entries)} interactions")
    with torch.random.fork_rng(devices=[]):
        for i in chosen:
            inner = entries[i]
            if isinstance(inner, wrapper):
                raise ValueError(f"{what} {i} already has FreeCG")
            entries[i] = wrapper(inner, FreeCGLayer(config)).to(next(inner.parameters()).dtype)


class FreeCGPaiNNInteraction(nn.Module):
    """A ``PaiNNInteraction`` with FreeCG on its aggregated messages (same signature)."""

    def __init__(self, interaction: PaiNNInteraction, freecg: FreeCGLayer) -> None:
        super().__init__()
        self.interaction = interaction
        self.freecg = freecg
        self.n_atom_basis = interaction.n_atom_basis
        self.use_enhancer = freecg.enhancer is not None
        # the enhancer's bias covers all three filters (3F), or one filter's F entries shared by the three
        self.bias_repeats = 3 * self.n_atom_basis // freecg.enhancer.linear.out_features if freecg.enhancer is not None else 1

    def forward(
        self, q: Tensor, mu: Tensor, Wij: Tensor, dir_ij: Tensor, idx_i: Tensor, idx_j: Tensor, n_atoms: int
    ) -> tuple[Tensor, Tensor]:
        state = torch.cat([q, mu], dim=1)  # [N, 4, F]: irreps 0e + 1o per channel
        if self.use_enhancer:
            sh = torch.cat([torch.ones_like(dir_ij[:, :1]), dir_ij], dim=1)
            Wij = Wij * (1.0 + self.freecg.edge_bias(state, sh, idx_j).repeat(1, self.bias_repeats)[:, None, :])
        x = self.interaction.interatomic_context_net(q)
        x = Wij * x[idx_j]
        dq, dmu_r, dmu_mu = torch.split(x, self.n_atom_basis, dim=-1)
        dq = scatter_add(dq, idx_i, dim_size=n_atoms)
        dmu = scatter_add(dmu_r * dir_ij[..., None] + dmu_mu * mu[idx_j], idx_i, dim_size=n_atoms)
        update = self.freecg(torch.cat([dq, dmu], dim=1), state)
        return q + update[:, :1], mu + update[:, 1:]


def spk_to_e3nn_basis(lmax: int) -> Tensor:
    """Orthogonal ``Q [(lmax+1)^2, (lmax+1)^2]`` with ``Y_e3nn = Q @ Y_spk``, block-diagonal in l.

    SchNetPack's real harmonics are e3nn's (both "integral"-normalised) seen from axes rotated by
    the cyclic permutation ``R0: (y, z, x) -> (x, y, z)``: its l = 1 block is ``R0`` and every l
    block is exactly e3nn's Wigner matrix ``D_l(R0)``. ``R0`` is read off SchNetPack's l = 1
    harmonics and the whole ``Q`` checked against SchNetPack's harmonics to 1e-6 (its own
    normalisation constants carry float32 rounding). Because ``Q`` is a rotation, CG products are
    equivariant in either basis; converting keeps FreeCG weights meaning what they mean in e3nn.
    """
    from e3nn.o3 import Irrep, spherical_harmonics

    points = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    points = points / points.norm(dim=1, keepdim=True)
    y_spk = RealSphericalHarmonics(lmax, dtype_str="float64")(points)
    y_e3nn = spherical_harmonics(list(range(lmax + 1)), points, normalize=False, normalization="integral")
    r0 = torch.linalg.lstsq(y_spk[:, 1:4], y_e3nn[:, 1:4]).solution.T.round()  # a signed permutation
    q = torch.block_diag(*[Irrep(l, 1).D_from_matrix(r0) for l in range(lmax + 1)])
    residual = (y_spk @ q.T - y_e3nn).abs().max()
    if torch.det(r0) != 1 or residual > 1e-6:
        raise RuntimeError(f"SchNetPack's harmonics are not e3nn's rotated (det {torch.det(r0):.0f}, residual {residual:.1e})")
    return q


class FreeCGSO3Convolution(ExactBuffers):
    """An ``SO3Convolution`` with FreeCG on its aggregated output (same signature)."""

    def __init__(self, convolution: SO3Convolution, freecg: FreeCGLayer) -> None:
        super().__init__()
        self.convolution = convolution
        self.freecg = freecg
        self.use_enhancer = freecg.enhancer is not None
        self.register_exact_buffer("to_e3nn", spk_to_e3nn_basis(convolution.lmax))

    def forward(self, x: Tensor, radial_ij: Tensor, dir_ij: Tensor, cutoff_ij: Tensor, idx_i: Tensor, idx_j: Tensor) -> Tensor:
        conv = self.convolution
        # the host's radial filter, modulated per l before it is spread over the CG entries (Widx)
        Wij = torch.reshape(conv.filternet(radial_ij) * cutoff_ij, (-1, conv.lmax + 1, conv.n_atom_basis))
        if self.use_enhancer:  # dir_ij here is SO3net's Y_ij (SchNetPack basis): the dot product is basis-free
            Wij = Wij * (1.0 + self.freecg.edge_bias(x, dir_ij, idx_j)[:, None, :])
        Wij = Wij[:, conv.Widx]  # [E, n_cg, F]
        xj = x[idx_j[:, None], conv.idx_in_2[None, :], :]
        v = Wij * dir_ij[:, conv.idx_in_1, None] * conv.clebsch_gordan[None, :, None] * xj
        yij = scatter_add(v, conv.idx_out, dim_size=int((conv.lmax + 1) ** 2), dim=1)
        y = scatter_add(yij, idx_i, dim_size=x.shape[0])
        q = self.to_e3nn
        update = self.freecg(torch.matmul(q, y), torch.matmul(q, x))
        return torch.matmul(q.T, update)


def _require(model: nn.Module, kind: type, splice: str) -> None:
    if not isinstance(model, kind):
        raise TypeError(f"{splice} takes a schnetpack {kind.__name__} representation, got {type(model).__name__}")


def splice_painn(
    painn: PaiNN,
    freecg: Optional[Mapping[str, Any]] = None,
    layers: Optional[Sequence[int]] = None,
    identity_start: bool = True,
) -> PaiNN:
    """Put FreeCG into an existing PaiNN (in place, keeping its weights) and return it.

    Args:
        painn: a ``schnetpack.representation.PaiNN``.
        freecg: FreeCG settings as a mapping (``groups``, ``shuffle``, ``shift``, ``enhancer``,
            ``group_cg``, ``paths``...). The host sets ``irreps="0e+1o"``, ``channels``,
            ``symmetry="O3"`` and ``enhancer_out`` (3 x channels, or channels with
            ``enhancer_per_channel``: one bias per channel for all three filters); ``paths`` default to
            :data:`PAINN_PATHS`, ``groups`` to channels / 8 (see ``FreeCGConfig.for_host``).
        layers: which interactions get FreeCG (default all).
        identity_start: make sure the model's outputs are unchanged until trained (the default
            zero weights do it; with a gate, the closed gate does).
    """
    _require(painn, PaiNN, "splice_painn")
    f = painn.n_atom_basis
    per_channel = bool(dict(freecg or {}).get("enhancer_per_channel", FreeCGConfig.enhancer_per_channel))
    host = dict(irreps="0e+1o", channels=f, symmetry="O3", enhancer_out=f if per_channel else 3 * f, keep_self_update=False)
    if identity_start:
        host.update(host_start(freecg))
    config = FreeCGConfig.for_host(freecg, host, paths=list(PAINN_PATHS))
    _wrap(painn.interactions, FreeCGPaiNNInteraction, config, layers, "PaiNN interaction")
    return painn


def splice_so3net(
    so3net: SO3net,
    freecg: Optional[Mapping[str, Any]] = None,
    layers: Optional[Sequence[int]] = None,
    identity_start: bool = True,
) -> SO3net:
    """Put FreeCG into an existing SO3net (in place, keeping its weights) and return it.

    Args:
        so3net: a ``schnetpack.representation.SO3net``.
        freecg: FreeCG settings as a mapping. The host sets ``irreps`` (``0e+1o+2e+...`` up to
            its lmax), ``channels``, ``symmetry="O3"`` and ``enhancer_out``; ``paths`` default
            to every parity-respecting path, ``groups`` to channels / 8.
        layers: which interactions get FreeCG (default all).
        identity_start: make sure the model's outputs are unchanged until trained (the default
            zero weights do it; with a gate, the closed gate does).
    """
    _require(so3net, SO3net, "splice_so3net")
    f = so3net.n_atom_basis
    host = dict(
        irreps=spherical_irreps(so3net.lmax), channels=f, symmetry="O3", enhancer_out=f, enhancer_per_channel=False, keep_self_update=False
    )
    if identity_start:
        host.update(host_start(freecg))
    config = FreeCGConfig.for_host(freecg, host)
    _wrap(so3net.so3convs, FreeCGSO3Convolution, config, layers, "SO3net convolution")
    return so3net


class PaiNNFreeCG(PaiNN):
    """PaiNN with FreeCG, for ``spktrain`` configs (``_target_: freecg_plugin.adapters.schnetpack.PaiNNFreeCG``).

    Takes every ``PaiNN`` argument, plus:

    Args:
        freecg: FreeCG settings as a mapping (``groups``, ``shuffle``, ``shift``, ``enhancer``,
            ``group_cg``, ``init``...); host fields are filled in.
        freecg_layers: interactions that get FreeCG (default all).
    """

    def __init__(
        self, *args: Any, freecg: Optional[Mapping[str, Any]] = None, freecg_layers: Optional[Sequence[int]] = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        splice_painn(self, freecg, freecg_layers, identity_start=False)


class SO3netFreeCG(SO3net):
    """SO3net with FreeCG, for ``spktrain`` configs (``_target_: freecg_plugin.adapters.schnetpack.SO3netFreeCG``).

    Takes every ``SO3net`` argument, plus ``freecg`` (a mapping of FreeCG settings) and
    ``freecg_layers`` (interactions that get FreeCG, default all).
    """

    def __init__(
        self, *args: Any, freecg: Optional[Mapping[str, Any]] = None, freecg_layers: Optional[Sequence[int]] = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        splice_so3net(self, freecg, freecg_layers, identity_start=False)


class SchNetPackPotential(nn.Module):
    """A SchNetPack representation with an atomwise energy head, on an explicit graph.

    The interface of :func:`freecg_plugin.atomistic.evaluate` (and of ``ViSNetPotential``), so the
    project's trainer can train PaiNN and SO3net, bare or with FreeCG, exactly as it trains ViSNet.
    ``energy = std * sum_i MLP(h_i) + mean``, the head being SchNetPack's ``Atomwise`` MLP.

    Shapes:
        numbers ``[N]``, positions ``[N, 3]``, batch ``[N]``, edge_index ``[2, E]`` (source j,
        target i), edge_vec ``[E, 3]`` (``r_j - r_i`` with periodic shifts) -> energy ``[num_graphs]``.
    """

    def __init__(self, representation: nn.Module, n_atom_basis: int, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.representation = representation
        self.head = build_mlp(n_in=n_atom_basis, n_out=1, n_layers=2)
        self.mean, self.std = float(mean), float(std)

    def _representation(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor):
        inputs = {
            properties.Z: numbers,
            properties.R: positions,
            properties.Rij: edge_vec,
            properties.idx_i: edge_index[1],
            properties.idx_j: edge_index[0],
            properties.idx_m: batch,
        }
        return self.representation(inputs)

    def features(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor) -> Tuple[Tensor, Tensor]:
        """The final per-atom features: scalars ``[N, F]`` and l = 1 vectors ``[N, 3, F]``
        (Cartesian x, y, z): PaiNN's vector representation, SO3net's l = 1 block reordered from
        the real spherical harmonics' (y, z, x)."""
        out = self._representation(numbers, positions, batch, edge_index, edge_vec)
        if "vector_representation" in out:
            return out["scalar_representation"], out["vector_representation"]
        return out["scalar_representation"], torch.roll(out["multipole_representation"][:, 1:4], 1, 1)

    def forward(self, numbers: Tensor, positions: Tensor, batch: Tensor, edge_index: Tensor, edge_vec: Tensor, num_graphs: int) -> Tensor:
        out = self._representation(numbers, positions, batch, edge_index, edge_vec)
        atomic = self.head(out["scalar_representation"]).squeeze(-1)
        return atomic.new_zeros(num_graphs).index_add(0, batch, atomic) * self.std + self.mean
