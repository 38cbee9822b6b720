"""Model builders: FreeCG in NequIP and Allegro models, from Python or a ``nequip-train`` YAML.

Three builders, each a nequip ``@model_builder`` (so they take ``seed``, ``model_dtype``,
``type_names`` and ``r_max`` and return a ``GraphModel``):

* :func:`FreeCGNequIPGNNModel`: every argument of ``nequip.model.NequIPGNNModel`` plus ``freecg``;
* :func:`FreeCGAllegroModel`: every argument of ``allegro.model.AllegroModel`` plus ``freecg``;
* :func:`FreeCGModel`: ``host`` (any nequip/allegro builder as a ``_target_`` mapping) plus
  ``freecg`` — FreeCG spliced into a model built by the host's own builder.

The ``freecg`` block (all optional): ``groups`` or ``edges_per_group`` (default K = 8 when the
channels allow it, else one group), ``paths``, ``symmetry``, ``group_cg``, ``shuffle``, ``shift``,
``enhancer`` and ``enhancer_per_channel`` (NequIP only), ``operand_norm``, ``gate``, ``init`` (``zeros``, the default: the model
starts as the host, see :class:`~freecg_plugin.nn.FreeCGConfig`; ``normal``, ``xavier``) and ``layers``
(indices of the interaction blocks / Allegro layers that get FreeCG; default all that can). The
host fixes ``irreps`` and ``channels``. The modules themselves live in
:mod:`freecg_plugin.adapters.nequip_nn`, which ``nequip-package`` can intern.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import torch
from allegro.model import AllegroModel
from allegro.nn._allegro import Allegro_Module
from e3nn.o3._irreps import Irreps
from hydra.utils import get_method
from nequip.model import NequIPGNNModel, model_builder
from nequip.nn import GraphModel
from nequip.nn.interaction_block import InteractionBlock

from freecg_plugin.nn import FreeCGConfig, FreeCGLayer, host_start

from .nequip_nn import FreeCGEnvironmentContracter, FreeCGTensorProductScatter, freecg_irreps

__all__ = ["FreeCGAllegroModel", "FreeCGModel", "FreeCGNequIPGNNModel", "splice_freecg"]


def _chosen(layers: Optional[List[int]], eligible: List[int], count: int, what: str) -> List[int]:
    if layers is None:
        return eligible
    chosen = [int(i) for i in layers]
    bad = [i for i in chosen if i not in eligible]
    if bad:
        raise ValueError(
            f"FreeCG layers {bad} are not available: this model's {what} that can take FreeCG are "
            f"{eligible} (of {count}; the last NequIP block aggregates scalars only)"
        )
    return chosen


def _splice_nequip(blocks: List[InteractionBlock], settings: Dict[str, Any], layers: Optional[List[int]]) -> None:
    def host_scatter(block: InteractionBlock) -> torch.nn.Module:
        scatter = block.tp_scatter
        return scatter.tp_scatter if isinstance(scatter, FreeCGTensorProductScatter) else scatter

    eligible = [i for i, b in enumerate(blocks) if Irreps(host_scatter(b).irreps_mid).lmax >= 1]
    for i in _chosen(layers, eligible, len(blocks), "interaction blocks"):
        block = blocks[i]
        scatter = block.tp_scatter
        if isinstance(scatter, FreeCGTensorProductScatter):
            raise ValueError(f"interaction block {i} already has FreeCG")
        irreps_mid = Irreps(scatter.irreps_mid)
        channels = max(mul for mul, _ in irreps_mid)
        host = dict(
            irreps=str(freecg_irreps(irreps_mid, scatter.irreps_edge_attr)),
            channels=channels,
            enhancer_out=scatter.tp.weight_numel,
            keep_self_update=False,
        )
        if settings.get("enhancer_per_channel", FreeCGConfig.enhancer_per_channel):
            host["enhancer_out"] = channels
        config = FreeCGConfig.for_host(settings, host)
        dtype = next(block.parameters()).dtype
        block.tp_scatter = FreeCGTensorProductScatter(scatter, FreeCGLayer(config), scatter.feature_irreps_in).to(dtype)


def _splice_allegro(allegro: Allegro_Module, settings: Dict[str, Any], layers: Optional[List[int]]) -> None:
    sh = Irreps(allegro.irreps_in[allegro.tensor_basis_in_field])
    irreps = freecg_irreps(sh, sh)
    channels = allegro.num_tensor_features
    host = dict(irreps=str(irreps), channels=channels, keep_self_update=False)
    config = FreeCGConfig.for_host(settings, host, enhancer=False)
    dtype = next(allegro.parameters()).dtype
    for i in _chosen(layers, list(range(len(allegro.tps))), len(allegro.tps), "Allegro layers"):
        if isinstance(allegro.tps[i], FreeCGEnvironmentContracter):
            raise ValueError(f"Allegro layer {i} already has FreeCG")
        allegro.tps[i] = FreeCGEnvironmentContracter(allegro.tps[i], FreeCGLayer(config)).to(dtype)


def splice_freecg(model: torch.nn.Module, freecg: Optional[Mapping[str, Any]] = None, identity_start: bool = False) -> torch.nn.Module:
    """Put FreeCG into a NequIP or Allegro model (in place, keeping its weights) and return it.

    Args:
        model: a model from nequip's or allegro's builders (a ``GraphModel`` or the module inside).
        freecg: the ``freecg`` block described in this module's docstring.
        identity_start: make sure the model's outputs are unchanged until trained, e.g. to
            fine-tune a trained model with FreeCG (the default zero weights do it; with a gate,
            the closed gate does).

    Raises:
        ValueError: if the model has neither NequIP interaction blocks nor an Allegro module, or
            the settings do not fit it (the message says which).
    """
    settings = dict(freecg or {})
    layers = settings.pop("layers", None)
    if identity_start:
        settings.update(host_start(settings))
    inner = model.model if isinstance(model, GraphModel) else model
    blocks = [m for m in inner.modules() if isinstance(m, InteractionBlock)]
    allegros = [m for m in inner.modules() if isinstance(m, Allegro_Module)]
    if blocks:
        _splice_nequip(blocks, settings, layers)
    elif len(allegros) == 1:
        _splice_allegro(allegros[0], settings, layers)
    else:
        raise ValueError("splice_freecg: found no NequIP interaction blocks and no (single) Allegro module in the model")
    return model


@model_builder
def FreeCGNequIPGNNModel(freecg: Optional[Dict[str, Any]] = None, **kwargs: Any) -> torch.nn.Module:
    """NequIP GNN with FreeCG on each interaction block's aggregated messages.

    Args:
        freecg: the FreeCG block (see :mod:`freecg_plugin.adapters.nequip_models`).
        **kwargs: every argument of ``nequip.model.NequIPGNNModel`` (``seed``, ``model_dtype``,
            ``type_names``, ``r_max``, ``num_layers``, ``l_max``, ``parity``, ``num_features``,
            ``radial_mlp_*``, ``avg_num_neighbors``, ``per_type_energy_*``, ...).
    """
    return splice_freecg(NequIPGNNModel(**kwargs), freecg)


@model_builder
def FreeCGAllegroModel(freecg: Optional[Dict[str, Any]] = None, **kwargs: Any) -> torch.nn.Module:
    """Allegro with FreeCG on each layer's per-atom environment before its tensor product.

    Args:
        freecg: the FreeCG block (see :mod:`freecg_plugin.adapters.nequip_models`; no enhancer).
        **kwargs: every argument of ``allegro.model.AllegroModel`` (``seed``, ``model_dtype``,
            ``type_names``, ``r_max``, ``l_max``, ``parity``, ``radial_chemical_embed``,
            ``num_layers``, ``num_scalar_features``, ``num_tensor_features``, ...).
    """
    return splice_freecg(AllegroModel(**kwargs), freecg)


@model_builder
def FreeCGModel(
    host: Dict[str, Any], freecg: Optional[Dict[str, Any]] = None, identity_start: bool = False, **kwargs: Any
) -> torch.nn.Module:
    """FreeCG spliced into a model built by another nequip builder.

    Args:
        host: the host builder as a mapping with ``_target_`` (e.g. ``nequip.model.NequIPGNNModel``
            or ``allegro.model.AllegroModel``), optionally with some of its arguments.
        freecg: the FreeCG block.
        identity_start: start with the new weights at zero (the model computes what the host does).
        **kwargs: ``seed`` and ``model_dtype`` (consumed by ``@model_builder``) and every other
            host argument (``type_names``, ``r_max``, ...), passed on to the host builder.
    """
    host = dict(host)
    if "_target_" not in host:
        raise ValueError("FreeCGModel: `host` needs a `_target_` naming the host's model builder")
    clash = sorted(set(host) & set(kwargs))
    if clash:
        raise ValueError(f"FreeCGModel: {clash} given both inside `host` and beside it; give each once")
    builder = get_method(host.pop("_target_"))
    return splice_freecg(builder(**host, **kwargs), freecg, identity_start)
