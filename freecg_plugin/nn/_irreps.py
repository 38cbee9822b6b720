"""Irreps helpers shared by the core modules.

Only private e3nn modules are imported here: ``from e3nn import o3`` pulls in sympy, which
nequip's packager refuses, and the core must stay packaging-safe. The core's e3nn imports all go
through this module: e3nn 0.4.4 (MACE's pin) loads its constants with a bare ``torch.load``,
which torch >= 2.6 reads weights-only, and those constants hold a ``slice``; that one type is
allowed while e3nn imports (nothing else is unpickled, and no setting outlives the import).
"""

from __future__ import annotations

import torch

with torch.serialization.safe_globals([slice]):
    from e3nn.o3._irreps import Irrep, Irreps
    from e3nn.o3._wigner import wigner_3j

__all__ = ["Irrep", "Irreps", "edge_irreps", "spherical_irreps", "wigner_3j"]


def edge_irreps(irreps: Irreps | str, what: str = "irreps") -> Irreps:
    """Validate the irreps carried by one abstract edge (one copy of each irrep).

    An abstract edge is one channel of a host's equivariant features, so every irrep appears
    with multiplicity 1, sorted by l, each l at most once (e.g. ``1o+2e`` for ViSNet,
    ``0e+1o+2e`` for SO3net). At least one irrep must have l >= 1.

    Raises:
        ValueError: naming the problem.
    """
    try:
        irreps = Irreps(irreps)
    except (ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"{what}: cannot parse {irreps!r} as irreps ({err})") from None
    if len(irreps) == 0:
        raise ValueError(f"{what}: empty irreps")
    for mul, ir in irreps:
        if mul != 1:
            raise ValueError(
                f"{what}: {irreps} has multiplicity {mul} for {ir}; an abstract edge carries "
                "each irrep once (channels are the multiplicity), e.g. '1o+2e'"
            )
    ls = [ir.l for _, ir in irreps]
    if ls != sorted(set(ls)):
        raise ValueError(f"{what}: {irreps} must list each l once, sorted by l")
    if max(ls) < 1:
        raise ValueError(f"{what}: {irreps} has lmax 0; FreeCG needs equivariant (l >= 1) features")
    return irreps


def spherical_irreps(lmax: int) -> str:
    """``"0e+1o+2e+..."`` up to ``lmax``: one copy of each l with the harmonics' parity (-1)^l."""
    return "+".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1))
