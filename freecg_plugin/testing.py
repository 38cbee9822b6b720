"""Symmetry and finite-difference checks shared by every test of the layer, adapters and models.

Users can certify their own host + FreeCG combinations with the same helpers. All checks draw
random rotations (and reflections) and compare in the dtype of the inputs; use float64.

Two levels:

* :func:`assert_equivariant` / :func:`assert_permutation_equivariant`: any function of tensors
  whose axes carry irreps (``[N, D, C]`` host features, ``[N, G, K, D]`` abstract edges...).
* :func:`assert_energy_model_symmetries` / :func:`assert_forces_match_finite_differences`: an
  energy model ``energy_fn(positions, numbers, cell) -> energy`` (forces by autograd), checked
  for rotation, reflection, translation and permutation, and against finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .nn._irreps import Irreps

__all__ = [
    "Equivariant",
    "assert_energy_model_symmetries",
    "assert_equivariant",
    "assert_forces_match_finite_differences",
    "assert_permutation_equivariant",
    "e3nn_reference_group_cg",
    "random_orthogonal",
    "rotate",
]


@dataclass(frozen=True)
class Equivariant:
    """How a tensor transforms: ``irreps`` along axis ``dim`` (``None``: invariant)."""

    irreps: Optional[Irreps | str] = None
    dim: int = -1


def random_orthogonal(dtype: torch.dtype = torch.float64, reflection: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """A random 3x3 rotation (Haar), times -1 when ``reflection`` (an improper rotation)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return (-q if reflection else q).to(dtype)


def rotate(x: Tensor, spec: Equivariant, matrix: Tensor) -> Tensor:
    """Apply ``D(matrix)`` of ``spec.irreps`` along ``spec.dim`` (identity for invariants)."""
    if spec.irreps is None:
        return x
    wigner = Irreps(spec.irreps).D_from_matrix(matrix.to(torch.float64)).to(x.dtype)
    moved = x.movedim(spec.dim, -1)
    return (moved @ wigner.T).movedim(-1, spec.dim)


def _as_tuple(x: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _assert_close(actual: Tensor, expected: Tensor, rtol: float, what: str, atol: float = 0.0) -> None:
    scale = expected.abs().max().clamp_min(1e-30)
    err = (actual - expected).abs().max()
    if not torch.isfinite(err) or err > max(rtol * scale, atol):
        floor = f" (floor {atol:.1e})" if atol else ""
        raise AssertionError(f"{what}: max error {err:.3e} exceeds {rtol:.1e} x max |expected| = {scale:.3e}{floor}")


def assert_equivariant(
    fn: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Sequence[Tensor],
    specs_in: Sequence[Equivariant],
    specs_out: Sequence[Equivariant],
    reflection: bool = True,
    trials: int = 3,
    rtol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> None:
    """``fn(D_in x) == D_out fn(x)`` for random rotations, and reflections when ``reflection``.

    Raises:
        AssertionError: naming the output, the transformation and the error.
    """
    expected = _as_tuple(fn(*inputs))
    if len(expected) != len(specs_out):
        raise ValueError(f"fn returned {len(expected)} outputs, specs_out describes {len(specs_out)}")
    kinds = [False, True] if reflection else [False]
    for trial in range(trials):
        for improper in kinds:
            matrix = random_orthogonal(torch.float64, improper, generator)
            rotated = fn(*[rotate(x, s, matrix) for x, s in zip(inputs, specs_in, strict=True)])
            for i, (out, ref, spec) in enumerate(zip(_as_tuple(rotated), expected, specs_out, strict=True)):
                what = f"output {i} under a random {'reflection' if improper else 'rotation'} (trial {trial})"
                _assert_close(out, rotate(ref, spec, matrix), rtol, what)


def assert_permutation_equivariant(
    fn: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Sequence[Tensor],
    dims_in: Sequence[Optional[int]],
    dims_out: Sequence[Optional[int]],
    rtol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> None:
    """Permuting axis ``dims_in[i]`` of every input (``None``: not permuted) permutes the
    outputs along ``dims_out`` (``None``: invariant output)."""
    sizes = {x.shape[d] for x, d in zip(inputs, dims_in, strict=True) if d is not None}
    if len(sizes) != 1:
        raise ValueError(f"permuted axes must share one size, got {sizes}")
    perm = torch.randperm(sizes.pop(), generator=generator)
    expected = _as_tuple(fn(*inputs))
    permuted = fn(*[x if d is None else x.index_select(d, perm) for x, d in zip(inputs, dims_in, strict=True)])
    for i, (out, ref, d) in enumerate(zip(_as_tuple(permuted), expected, dims_out, strict=True)):
        _assert_close(out, ref if d is None else ref.index_select(d, perm), rtol, f"output {i} under a permutation")


EnergyFn = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]


def _energy_and_forces(energy_fn: EnergyFn, positions: Tensor, numbers: Tensor, cell: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    positions = positions.detach().clone().requires_grad_(True)
    energy = energy_fn(positions, numbers, cell)
    (grad,) = torch.autograd.grad(energy.sum(), positions)
    return energy.detach(), -grad


def assert_energy_model_symmetries(
    energy_fn: EnergyFn,
    positions: Tensor,
    numbers: Tensor,
    cell: Optional[Tensor] = None,
    reflection: bool = True,
    trials: int = 2,
    rtol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> None:
    """Energy invariant and forces equivariant under rotation, reflection (if ``reflection``),
    translation and atom permutation. ``cell`` rows are lattice vectors (rotated with the atoms).

    Raises:
        AssertionError: naming the symmetry that fails and the error.
    """
    energy, forces = _energy_and_forces(energy_fn, positions, numbers, cell)
    kinds = [False, True] if reflection else [False]
    for trial in range(trials):
        for improper in kinds:
            name = f"{'reflection' if improper else 'rotation'} (trial {trial})"
            matrix = random_orthogonal(positions.dtype, improper, generator)
            e_rot, f_rot = _energy_and_forces(energy_fn, positions @ matrix.T, numbers, None if cell is None else cell @ matrix.T)
            _assert_close(e_rot, energy, rtol, f"energy under a {name}")
            _assert_close(f_rot, forces @ matrix.T, rtol, f"forces under a {name}")
        shift = torch.randn(3, dtype=positions.dtype, generator=generator) * 3.0
        e_tr, f_tr = _energy_and_forces(energy_fn, positions + shift, numbers, cell)
        _assert_close(e_tr, energy, rtol, f"energy under a translation (trial {trial})")
        _assert_close(f_tr, forces, rtol, f"forces under a translation (trial {trial})")
        perm = torch.randperm(positions.shape[0], generator=generator)
        e_p, f_p = _energy_and_forces(energy_fn, positions[perm], numbers[perm], cell)
        _assert_close(e_p, energy, rtol, f"energy under an atom permutation (trial {trial})")
        _assert_close(f_p, forces[perm], rtol, f"forces under an atom permutation (trial {trial})")


def assert_forces_match_finite_differences(
    energy_fn: EnergyFn,
    positions: Tensor,
    numbers: Tensor,
    cell: Optional[Tensor] = None,
    step: float = 1e-5,
    coordinates: int = 6,
    rtol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> None:
    """Autograd forces equal central differences ``-(E(x+h) - E(x-h)) / 2h`` on random coordinates,
    within ``rtol`` of the largest force, or within the rounding error of the differences
    themselves (``10 eps |E| / step``), whichever is larger: nearly zero forces (atoms at the
    cutoff) are compared at the precision the differences have."""
    energy, forces = _energy_and_forces(energy_fn, positions, numbers, cell)
    flat = torch.randperm(positions.numel(), generator=generator)[:coordinates]
    numeric = []
    for index in flat.tolist():
        plus, minus = positions.detach().clone(), positions.detach().clone()
        plus.view(-1)[index] += step
        minus.view(-1)[index] -= step
        with torch.no_grad():
            numeric.append(-(energy_fn(plus, numbers, cell).sum() - energy_fn(minus, numbers, cell).sum()) / (2 * step))
    rounding = 10 * torch.finfo(positions.dtype).eps * float(energy.abs().sum()) / step
    _assert_close(forces.reshape(-1)[flat], torch.stack(numeric), rtol, "forces vs finite differences", atol=rounding)


def e3nn_reference_group_cg(module) -> Callable[[Tensor, Tensor], Tensor]:
    """The authors' form of the group CG, for tests and benchmarks only.

    e3nn's ``TensorProduct`` (``uvw`` on every path, ``shared_weights=False``) called on
    ``[N, G, dim]`` with the broadcast weight ``[1, G, numel]``; equal to
    ``FullyConnectedTensorProduct`` when all allowed paths are kept. Under ``SO3`` the parities
    are dropped (CG coefficients do not depend on them). Takes and returns our
    ``[N, G, K, D]`` layout.
    """
    from e3nn.o3 import Irrep as E3Irrep
    from e3nn.o3 import TensorProduct

    k, strip = module.edges_per_group, module.symmetry == "SO3"

    def multiplied(irreps: Irreps) -> Irreps:
        return Irreps([(k, E3Irrep(ir.l, 1) if strip else ir) for _, ir in irreps])

    in1, in2, out = (multiplied(i) for i in (module.irreps_in1, module.irreps_in2, module.irreps_out))
    index = [{ir.l: i for i, (_, ir) in enumerate(irr)} for irr in (in1, in2, out)]
    instructions = [(index[0][p.l1], index[1][p.l2], index[2][p.l3], "uvw", True) for p in module.paths]
    tp = TensorProduct(in1, in2, out, instructions, shared_weights=False, internal_weights=False)
    tp = tp.to(device=module.weight.device, dtype=module.weight.dtype)

    def to_mul_ir(x: Tensor, irreps: Irreps) -> Tensor:
        n, g = x.shape[:2]
        return torch.cat([x[..., s].reshape(n, g, -1) for s in irreps.slices()], dim=-1)

    def from_mul_ir(y: Tensor, irreps: Irreps) -> Tensor:
        n, g = y.shape[:2]
        blocks = [y[..., s].reshape(n, g, k, ir.dim) for s, (_, ir) in zip(irreps.slices(), irreps, strict=True)]
        return torch.cat(blocks, dim=-1)

    def reference(x1: Tensor, x2: Tensor) -> Tensor:
        weight = module.weight.reshape(1, module.groups, -1)
        y = tp(to_mul_ir(x1, module.irreps_in1), to_mul_ir(x2, module.irreps_in2), weight)
        return from_mul_ir(y, out)

    return reference
