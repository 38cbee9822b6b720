"""The host models the project's trainer builds, bare or with FreeCG.

Every host comes back as an explicit-graph potential with one interface,
``model(numbers, positions, batch, edge_index, edge_vec, num_graphs) -> energy [B]`` (see
:func:`freecg_plugin.atomistic.evaluate`), so that one training loop — loss, optimiser, schedule,
EMA, precision — serves all of them and a host and its FreeCG variant differ in the model only.
``energy = std * E_host + mean`` for every host (ViSNet through its own ``mean``/``std``).

Hosts and their ``args`` (the host's own constructor arguments; the cutoff is given apart):

* ``visnet``: ``torch_geometric.nn.models.ViSNet`` (``lmax``, ``num_heads``, ``num_layers``,
  ``hidden_channels``, ``num_rbf``, ``max_num_neighbors``...), bare or not with a vector message
  that vanishes at the cutoff (see :mod:`freecg_plugin.adapters.pyg_visnet`);
* ``painn`` / ``so3net``: SchNetPack's representations (``n_atom_basis``, ``n_interactions``,
  ``n_rbf`` for a Gaussian basis, ``lmax`` for SO3net...), cosine cutoff;
* ``nequip`` / ``allegro``: ``nequip.model.NequIPGNNModel`` / ``allegro.model.AllegroModel``
  arguments (``num_layers``, ``l_max``, ``num_features``..., ``model_dtype`` float32 unless
  given; type names, ``r_max`` and ``avg_num_neighbors`` come from the data).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

__all__ = ["HOSTS", "build_host"]


def _visnet(args, cutoff, freecg, layers, elements, mean, std, avg_num_neighbors, seed) -> nn.Module:
    from ..adapters.pyg_visnet import ViSNetPotential, build_visnet, build_visnet_freecg

    kwargs = dict(args, cutoff=cutoff, mean=float(mean), std=float(std), derivative=False)
    visnet = build_visnet(**kwargs) if freecg is None else build_visnet_freecg(freecg, layers, **kwargs)
    return ViSNetPotential(visnet)


def _schnetpack(kind: str) -> Callable[..., nn.Module]:
    def build(args, cutoff, freecg, layers, elements, mean, std, avg_num_neighbors, seed) -> nn.Module:
        import schnetpack as spk

        from ..adapters.schnetpack import PaiNNFreeCG, SchNetPackPotential, SO3netFreeCG

        args = dict(args)
        n_rbf = int(args.pop("n_rbf", 20))
        common = dict(radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff), cutoff_fn=spk.nn.CosineCutoff(cutoff), **args)
        bare, with_freecg = (spk.representation.PaiNN, PaiNNFreeCG) if kind == "painn" else (spk.representation.SO3net, SO3netFreeCG)
        representation = bare(**common) if freecg is None else with_freecg(**common, freecg=freecg, freecg_layers=layers)
        return SchNetPackPotential(representation, representation.n_atom_basis, mean, std)

    return build


def _nequip(kind: str) -> Callable[..., nn.Module]:
    def build(args, cutoff, freecg, layers, elements, mean, std, avg_num_neighbors, seed) -> nn.Module:
        from allegro.model import AllegroModel
        from ase.data import chemical_symbols
        from nequip.model import NequIPGNNModel
        from nequip.nn import ForceStressOutput
        from nequip.utils.global_state import global_state_initialized, set_global_state

        from ..adapters import nequip_models
        from ..adapters.nequip_nn import NequIPPotential

        if not global_state_initialized():
            dtype = torch.get_default_dtype()
            set_global_state()  # nequip's builders require it; it also sets float64 as default
            torch.set_default_dtype(dtype)
        if kind == "nequip":
            bare, with_freecg = NequIPGNNModel, nequip_models.FreeCGNequIPGNNModel
        else:
            bare, with_freecg = AllegroModel, nequip_models.FreeCGAllegroModel
        kwargs = dict(
            seed=int(seed),
            type_names=[chemical_symbols[z] for z in elements],
            r_max=float(cutoff),
            avg_num_neighbors=float(avg_num_neighbors),
            per_type_energy_shifts=0.0,
            per_type_energy_scales=1.0,
            **args,
        )
        kwargs.setdefault("model_dtype", "float32")
        if freecg is None:
            model = bare(**kwargs)
        else:
            model = with_freecg(freecg={**freecg, "layers": layers} if layers is not None else dict(freecg), **kwargs)
        (outputs,) = [m for m in model.modules() if isinstance(m, ForceStressOutput)]
        return NequIPPotential(outputs.func, list(elements), mean, std)

    return build


HOSTS: Dict[str, Callable[..., nn.Module]] = {
    "visnet": _visnet,
    "painn": _schnetpack("painn"),
    "so3net": _schnetpack("so3net"),
    "nequip": _nequip("nequip"),
    "allegro": _nequip("allegro"),
}


def build_host(
    host: str,
    args: Dict[str, Any],
    cutoff: float,
    freecg: Optional[Dict[str, Any]],
    freecg_layers: Optional[List[int]],
    elements: List[int],
    energy_mean: float = 0.0,
    energy_std: float = 1.0,
    avg_num_neighbors: float = 10.0,
    seed: int = 0,
) -> nn.Module:
    """Build ``host`` (one of :data:`HOSTS`) with FreeCG (``freecg`` a settings mapping) or bare
    (``freecg=None``) as an explicit-graph potential.

    Raises:
        ValueError: for an unknown host.
    """
    if host not in HOSTS:
        raise ValueError(f"unknown host {host!r}; known hosts: {sorted(HOSTS)}")
    return HOSTS[host](dict(args), float(cutoff), freecg, freecg_layers, list(elements), energy_mean, energy_std, avg_num_neighbors, seed)
