"""Every host the project knows, bare or with FreeCG, built from one :class:`ModelConfig`.

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
  given; type names, ``r_max`` and ``avg_num_neighbors`` come from the data);
* ``mace``: MACE as ``mace_run_train`` builds it (``channels``, ``max_L``, ``max_ell``,
  ``correlation``, ``num_interactions``, ``num_bessel``, ``num_polynomial_cutoff``,
  ``radial_MLP``, ``MLP_irreps``: see :func:`freecg_plugin.adapters.mace.build_mace`), in an
  environment of its own (``freecg-plugin[mace]``: mace-torch pins e3nn 0.4.4, NequIP needs 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn

from .atomistic import ReferenceEnergies

__all__ = ["HOSTS", "HostStatistics", "ModelConfig", "build_host", "build_potential"]


@dataclass
class ModelConfig:
    """Which host, its arguments, and FreeCG.

    Attributes:
        host: ``visnet``, ``painn``, ``so3net``, ``nequip``, ``allegro`` or ``mace`` (see :data:`HOSTS`).
        args: the host's own constructor arguments (default: the paper's ViSNet).
        cutoff: graph cutoff in Å (given to the host as its cutoff / ``r_max``).
        freecg: FreeCG settings (``null`` trains the bare host).
        freecg_layers: which layers get FreeCG (``null``: all that can).
    """

    host: str = "visnet"
    args: Dict[str, Any] = field(
        default_factory=lambda: dict(lmax=2, num_heads=8, num_layers=9, hidden_channels=256, num_rbf=32, max_num_neighbors=32)
    )
    cutoff: float = 5.0
    freecg: Optional[Dict[str, Any]] = field(default_factory=dict)
    freecg_layers: Optional[list] = None

    def bare(self) -> ModelConfig:
        """The same host without FreeCG."""
        return replace(self, freecg=None, freecg_layers=None)


@dataclass
class HostStatistics:
    """What a host takes from its training data.

    Attributes:
        elements: atomic numbers the model knows.
        energy_mean, energy_std: ``energy = energy_std * E_host + energy_mean``.
        avg_num_neighbors: neighbours per atom within the cutoff (hosts that normalise by it).
        seed: the weights' initialisation (nequip's builders take it).
    """

    elements: Sequence[int] = ()
    energy_mean: float = 0.0
    energy_std: float = 1.0
    avg_num_neighbors: float = 10.0
    seed: int = 0


def _visnet(m: ModelConfig, s: HostStatistics) -> nn.Module:
    from .adapters.pyg_visnet import ViSNetPotential, build_visnet, build_visnet_freecg

    kwargs = dict(m.args, cutoff=float(m.cutoff), mean=float(s.energy_mean), std=float(s.energy_std), derivative=False)
    visnet = build_visnet(**kwargs) if m.freecg is None else build_visnet_freecg(m.freecg, m.freecg_layers, **kwargs)
    return ViSNetPotential(visnet)


def _schnetpack(kind: str) -> Callable[..., nn.Module]:
    def build(m: ModelConfig, s: HostStatistics) -> nn.Module:
        import schnetpack as spk

        from .adapters.schnetpack import PaiNNFreeCG, SchNetPackPotential, SO3netFreeCG

        args, cutoff = dict(m.args), float(m.cutoff)
        n_rbf = int(args.pop("n_rbf", 20))
        common = dict(radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff), cutoff_fn=spk.nn.CosineCutoff(cutoff), **args)
        bare, with_freecg = (spk.representation.PaiNN, PaiNNFreeCG) if kind == "painn" else (spk.representation.SO3net, SO3netFreeCG)
        representation = bare(**common) if m.freecg is None else with_freecg(**common, freecg=m.freecg, freecg_layers=m.freecg_layers)
        return SchNetPackPotential(representation, representation.n_atom_basis, s.energy_mean, s.energy_std)

    return build


def _nequip(kind: str) -> Callable[..., nn.Module]:
    def build(m: ModelConfig, s: HostStatistics) -> nn.Module:
        from allegro.model import AllegroModel
        from ase.data import chemical_symbols
        from nequip.model import NequIPGNNModel
        from nequip.nn import ForceStressOutput
        from nequip.utils.global_state import global_state_initialized, set_global_state

        from .adapters import nequip_models
        from .adapters.nequip_nn import NequIPPotential

        if not global_state_initialized():
            dtype = torch.get_default_dtype()
            set_global_state()  # nequip's builders require it; it also sets float64 as default
            torch.set_default_dtype(dtype)
        if kind == "nequip":
            bare, with_freecg = NequIPGNNModel, nequip_models.FreeCGNequIPGNNModel
        else:
            bare, with_freecg = AllegroModel, nequip_models.FreeCGAllegroModel
        kwargs = dict(
            seed=int(s.seed),
            type_names=[chemical_symbols[z] for z in s.elements],
            r_max=float(m.cutoff),
            avg_num_neighbors=float(s.avg_num_neighbors),
            per_type_energy_shifts=0.0,
            per_type_energy_scales=1.0,
            **m.args,
        )
        kwargs.setdefault("model_dtype", "float32")
        if m.freecg is None:
            model = bare(**kwargs)
        else:
            layers = m.freecg_layers
            model = with_freecg(freecg={**m.freecg, "layers": layers} if layers is not None else dict(m.freecg), **kwargs)
        (outputs,) = [module for module in model.modules() if isinstance(module, ForceStressOutput)]
        return NequIPPotential(outputs.func, list(s.elements), s.energy_mean, s.energy_std)

    return build


def _mace(m: ModelConfig, s: HostStatistics) -> nn.Module:
    from .adapters.mace import MACEPotential, build_mace, build_mace_freecg

    kwargs = dict(m.args, elements=list(s.elements), cutoff=float(m.cutoff), avg_num_neighbors=float(s.avg_num_neighbors))
    model = build_mace(**kwargs) if m.freecg is None else build_mace_freecg(m.freecg, m.freecg_layers, **kwargs)
    return MACEPotential(model, list(s.elements), s.energy_mean, s.energy_std)


HOSTS: Dict[str, Callable[[ModelConfig, HostStatistics], nn.Module]] = {
    "visnet": _visnet,
    "painn": _schnetpack("painn"),
    "so3net": _schnetpack("so3net"),
    "nequip": _nequip("nequip"),
    "allegro": _nequip("allegro"),
    "mace": _mace,
}
"""Host name -> builder ``(ModelConfig, HostStatistics) -> explicit-graph potential``."""


def build_host(model: ModelConfig, statistics: Optional[HostStatistics] = None) -> nn.Module:
    """``model.host`` (one of :data:`HOSTS`) with FreeCG (``model.freecg`` a settings mapping) or
    bare (``model.freecg`` ``None``) as an explicit-graph potential.

    Raises:
        ValueError: for an unknown host.
    """
    if model.host not in HOSTS:
        raise ValueError(f"unknown host {model.host!r}; known hosts: {sorted(HOSTS)}")
    statistics = statistics or HostStatistics()
    return HOSTS[model.host](replace(model, args=dict(model.args)), replace(statistics, elements=list(statistics.elements)))


def build_potential(
    model: ModelConfig, statistics: Optional[HostStatistics] = None, atom_energies: Optional[Dict[int, float]] = None
) -> nn.Module:
    """:func:`build_host`, plus per-element reference energies when given (the statistics'
    ``energy_mean``/``energy_std`` then describe the energies left after subtracting them)."""
    potential = build_host(model, statistics)
    return potential if not atom_energies else ReferenceEnergies(potential, atom_energies)
