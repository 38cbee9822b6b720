"""The bare host widened to the parameter count of host + FreeCG (``freecg compare``'s
``parameters`` budget): does FreeCG buy more than its extra parameters would?

Each host is widened along its width argument (:data:`WIDTH_ARGS`), the channels every layer
carries: the widest setting, in the steps the host allows (ViSNet's channels divide into its
heads), that stays at or below the target. Channels come in coarse steps (one more ViSNet channel
per head adds several per cent), so the rest is filled with a finer argument
(:data:`FINE_ARGS`: radial basis or radial network width) raised one at a time; of the settings
that straddle the target the closer is kept. Counts come from building the models, so they are
exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..hosts import HostStatistics, ModelConfig, build_host

__all__ = ["WIDTH_ARGS", "Widened", "parameter_count", "widen_host"]

WIDTH_ARGS: Dict[str, str] = {
    "visnet": "hidden_channels",
    "painn": "n_atom_basis",
    "so3net": "n_atom_basis",
    "nequip": "num_features",
    "allegro": "num_scalar_features",
    "mace": "channels",
}
"""The argument each host is widened along."""

FINE_ARGS: Dict[str, str] = {
    "visnet": "num_rbf",
    "painn": "n_rbf",
    "so3net": "n_rbf",
    "nequip": "radial_mlp_width",
    "allegro": "allegro_mlp_hidden_layers_width",
    "mace": "num_bessel",
}
"""The argument that fills the rest of the parameter budget."""

_DEFAULTS = {  # the hosts' own defaults (the trainer's for the SchNetPack radial basis)
    "visnet": {"hidden_channels": 128, "num_rbf": 32, "num_heads": 8},
    "painn": {"n_atom_basis": 128, "n_rbf": 20},
    "so3net": {"n_atom_basis": 64, "n_rbf": 20},
    "nequip": {"num_features": 32, "radial_mlp_width": 64},
    "allegro": {"num_scalar_features": 64, "allegro_mlp_hidden_layers_width": 128},
    "mace": {"channels": 128, "num_bessel": 8},
}


@dataclass
class Widened:
    """A widened bare host: ``args`` (the host's arguments with the new widths), its
    ``parameters`` and the ``target`` (host + FreeCG's count)."""

    args: Dict[str, Any]
    parameters: int
    target: int

    @property
    def mismatch(self) -> float:
        """``parameters / target - 1``."""
        return self.parameters / self.target - 1.0


def parameter_count(
    host: str, args: Dict[str, Any], cutoff: float, freecg: Optional[Dict[str, Any]], layers: Optional[List[int]], elements: List[int]
) -> int:
    """Trainable parameters of ``host`` (with FreeCG when ``freecg`` is a mapping) for ``elements``."""
    model = build_host(
        ModelConfig(host, dict(args), cutoff, freecg, layers), HostStatistics(elements)
    )  # restores the default dtype nequip changes
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def widen_host(
    host: str,
    args: Dict[str, Any],
    cutoff: float,
    freecg: Optional[Dict[str, Any]],
    layers: Optional[List[int]],
    elements: List[int],
    max_steps: int = 400,
) -> Widened:
    """The bare ``host`` widened to host + FreeCG's parameter count.

    Raises:
        ValueError: for a host without width arguments, or when no setting within ``max_steps``
            steps of either argument reaches the target.
    """
    if host not in WIDTH_ARGS:
        raise ValueError(f"no width argument known for host {host!r}; known: {sorted(WIDTH_ARGS)}")
    target = parameter_count(host, args, cutoff, freecg, layers, elements)

    def count(values: Dict[str, Any]) -> Widened:
        return Widened(values, parameter_count(host, values, cutoff, None, None, elements), target)

    def raise_until_target(start: Dict[str, Any], key: str, step: int) -> tuple[Widened, Optional[Widened]]:
        """The last setting below the target and the first at or above it, along ``key``."""
        below, value = None, int(start.get(key, _DEFAULTS[host][key]))
        for _ in range(max_steps):
            current = count(dict(start, **{key: value}))
            if current.parameters >= target:
                return below, current
            below, value = current, value + step
        raise ValueError(f"{host}: {key} up to {value} stays short of {target} parameters")

    heads = int(args.get("num_heads", _DEFAULTS["visnet"]["num_heads"])) if host == "visnet" else 1
    below, above = raise_until_target(dict(args), WIDTH_ARGS[host], heads)
    if below is None:  # the host alone is already at the target
        return above
    if abs(below.mismatch) > 0.05:  # channels overshoot: fill the rest with the finer argument
        below, above = raise_until_target(below.args, FINE_ARGS[host], 1)
        below = below or above
    return below if abs(below.mismatch) < abs(above.mismatch) else above
