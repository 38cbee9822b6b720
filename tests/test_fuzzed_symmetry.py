"""Fuzzed symmetry (hypothesis): random irreps up to l = 3 (any parities), groups, widths and
sparse path sets for the layer and the group CG kernel; random molecules, triclinic cells and slabs
for every host + FreeCG, all in float64. Each example checks rotation, reflection (where parity
applies), translation and permutation through :mod:`freecg_plugin.testing`, forces against finite
differences of the energy, the zero start (host + FreeCG equals its host), and the compiled group
CG kernel against the torch contraction (values, first and second derivatives).

Bounded: no deadline, a fixed number of examples per test, no example database; derandomised when
``CI`` is set (the same examples on every CI run), random otherwise (new examples locally)."""

import os

import pytest
import torch
from helpers.tiny import HOSTS_TINY
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from freecg_plugin import FreeCGLayer, GroupCGTransform
from freecg_plugin.atomistic import Structure, collate, evaluate
from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host
from freecg_plugin.nn import enumerate_paths
from freecg_plugin.testing import (
    Equivariant,
    assert_energy_model_symmetries,
    assert_equivariant,
    assert_forces_match_finite_differences,
    assert_permutation_equivariant,
)

pytestmark = pytest.mark.slow


def fuzz(examples: int):
    """The bounds of every fuzzed test."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=bool(os.environ.get("CI")),
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


@st.composite
def edge_irreps(draw) -> str:
    """``0e+1o+...``: distinct degrees up to 3, at least one of them l >= 1, each with either parity."""
    degrees = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True).filter(lambda ls: max(ls) >= 1).map(sorted))
    return "+".join(f"{l}{draw(st.sampled_from('eo'))}" for l in degrees)


def natural_parities(irreps: str) -> bool:
    """Every irrep has the parity of the spherical harmonics, (-1)^l (what the enhancer needs under O(3))."""
    return all((part[1] == "e") == (int(part[0]) % 2 == 0) for part in irreps.split("+"))


@st.composite
def group_cg_settings(draw) -> dict:
    """Irreps, symmetry and a non-empty subset of the paths it allows."""
    irreps, symmetry = draw(edge_irreps()), draw(st.sampled_from(["O3", "SO3"]))
    allowed = enumerate_paths(irreps, symmetry=symmetry)
    assume(allowed)
    keep = draw(st.lists(st.sampled_from(allowed), min_size=1, max_size=len(allowed), unique=True))
    return {"irreps": irreps, "symmetry": symmetry, "paths": [str(p) for p in keep]}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _open(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Random FreeCG weights and open gates in ``model`` (a layer or a host): every term of each
    FreeCG layer is visible."""
    for module in model.modules():
        if isinstance(module, FreeCGLayer):
            with torch.no_grad():
                if module.group_cg is not None:
                    module.group_cg.weight.copy_(0.3 * torch.randn(module.group_cg.weight.shape, generator=generator))
                if module.enhancer is not None:
                    module.enhancer.linear.weight.copy_(0.3 * torch.randn(module.enhancer.linear.weight.shape, generator=generator))
                for gate in (module.gate, module.enhancer_gate):
                    if gate is not None:
                        gate.fill_(0.7)
    return model


# -- the layer and its kernel -----------------------------------------------------------------


@fuzz(100)
@given(
    path_set=group_cg_settings(),
    groups=st.integers(1, 4),
    width=st.integers(1, 3),
    atoms=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_layer_is_equivariant_and_starts_as_the_identity(path_set, groups, width, atoms, seed, float64):
    generator = _generator(seed)
    enhancer = path_set["symmetry"] == "SO3" or natural_parities(path_set["irreps"])  # O(3) refuses it otherwise
    layer_settings = dict(path_set, channels=groups * width, groups=groups, enhancer=enhancer, enhancer_out=3)
    fresh = FreeCGLayer(**layer_settings)
    a, b = (torch.randn(atoms, fresh.builder.dim, groups * width, generator=generator) for _ in range(2))
    assert torch.equal(fresh(a, b), a + b)  # zero start: the host's own update
    layer = _open(FreeCGLayer(**layer_settings), generator)
    spec = Equivariant(path_set["irreps"], 1)
    assert_equivariant(layer, [a, b], [spec, spec], [spec], reflection=path_set["symmetry"] == "O3", generator=generator)
    assert_permutation_equivariant(layer, [a, b], [0, 0], [0], generator=generator)


@fuzz(100)
@given(
    path_set=group_cg_settings(),
    groups=st.integers(1, 4),
    k=st.sampled_from([2, 4, 8]),  # the widths the kernel is compiled for (others run the torch contraction only)
    atoms=st.integers(1, 20),  # from 16 atoms on, two threads share them
    seed=st.integers(0, 2**31 - 1),
)
def test_the_compiled_kernel_equals_the_torch_contraction(path_set, groups, k, atoms, seed):
    generator = _generator(seed)
    module = GroupCGTransform(path_set["irreps"], groups, k, path_set["paths"], path_set["symmetry"]).double()
    torch.nn.init.normal_(module.weight, generator=generator)
    shape = (atoms, groups, k, module.irreps_in1.dim)
    x1, x2 = (torch.randn(*shape, dtype=torch.float64, generator=generator).requires_grad_(True) for _ in range(2))
    z = torch.randn(atoms, groups, k, module.irreps_out.dim, dtype=torch.float64, generator=generator)

    def derivatives():
        out = module(x1, x2)
        first = torch.autograd.grad((out * z).square().sum(), (x1, x2, module.weight), create_graph=True)
        mix = sum((g * torch.cos(torch.arange(g.numel(), dtype=g.dtype)).view_as(g)).sum() for g in first)
        return (out, *first, *torch.autograd.grad(mix, (x1, x2, module.weight)))

    module.kernel = "auto"
    assert module._kernel_applies(x1, x2)
    compiled = derivatives()
    module.kernel = "torch"
    reference = derivatives()
    for name, a, b in zip(["values", "d/dx1", "d/dx2", "d/dweight", "d2/dx1", "d2/dx2", "d2/dweight"], compiled, reference, strict=True):
        assert (a - b).abs().max() <= 1e-11 * max(float(b.abs().max()), 1e-30), name


# -- every host + FreeCG on random structures -------------------------------------------------

CUTOFF = 3.5
ELEMENTS = [1, 6, 8]
HOST_RTOL = {"so3net": 1e-6}
"""Symmetry tolerance (of the largest force) where the host itself is less exact than float64:
SchNetPack builds SO3net's coupling coefficients in float32, so the bare SO3net is equivariant to
~1.5e-8 of its forces (measured; FreeCG adds nothing to it). The others: 1e-9."""


def _min_distance(positions: torch.Tensor, cell, pbc) -> float:
    """The shortest distance between two atoms (periodic images included)."""
    shifts = [torch.zeros(3, dtype=positions.dtype)]
    if cell is not None:
        ranges = [range(-1, 2) if periodic else range(1) for periodic in pbc]
        shifts = [torch.tensor([i, j, k], dtype=positions.dtype) @ cell for i in ranges[0] for j in ranges[1] for k in ranges[2]]
    best = float("inf")
    for shift in shifts:
        d = (positions[:, None] - positions[None] + shift).norm(dim=-1)
        if not shift.any():
            d = d + torch.eye(len(positions), dtype=positions.dtype) * 1e9
        best = min(best, float(d.min()))
    return best


@st.composite
def structures(draw):
    """``(positions, numbers, cell, pbc)``: a molecule, a triclinic cell or a slab of 2-7 atoms."""
    kind = draw(st.sampled_from(["molecule", "cell", "slab"]))
    n = draw(st.integers(2, 7))
    generator = _generator(draw(st.integers(0, 2**31 - 1)))
    numbers = torch.tensor(ELEMENTS)[torch.randint(0, 3, (n,), generator=generator)]
    if kind == "molecule":
        positions, cell, pbc = torch.randn(n, 3, dtype=torch.float64, generator=generator) * 1.1, None, False
    else:
        lengths = 4.5 + 2.0 * torch.rand(3, dtype=torch.float64, generator=generator)
        cell = torch.diag(lengths) + 1.2 * (torch.rand(3, 3, dtype=torch.float64, generator=generator) - 0.5).triu(1).T
        if kind == "slab":
            cell[2] = torch.tensor([0.0, 0.0, 12.0], dtype=torch.float64)
        fractions = torch.rand(n, 3, dtype=torch.float64, generator=generator)
        if kind == "slab":
            fractions[:, 2] *= 0.3
        positions, pbc = fractions @ cell, (True, True, kind == "cell")
    assume(_min_distance(positions, cell, (pbc,) * 3 if isinstance(pbc, bool) else pbc) > 0.8)
    return positions, numbers, cell, pbc


def _host(host: str, freecg, seed: int):
    args, _ = HOSTS_TINY[host]
    torch.manual_seed(seed)
    return build_host(ModelConfig(host, args, CUTOFF, freecg), HostStatistics(ELEMENTS, -5.0, 3.0, 4.0, seed=seed)).double()


def _energy_fn(model, pbc):
    def energy(positions, numbers, cell=None):
        graph = collate([Structure(numbers, positions, cell, pbc)], CUTOFF, allow_isolated=True)
        return evaluate(model, graph, forces=False)["energy"].sum()

    return energy


@fuzz(60)
@given(host=st.sampled_from(sorted(HOSTS_TINY)), structure=structures(), seed=st.integers(0, 1000))
def test_every_host_with_freecg_keeps_its_symmetries_on_random_structures(host, structure, seed):
    positions, numbers, cell, pbc = structure
    freecg = HOSTS_TINY[host][1]
    bare, fresh = _host(host, None, seed), _host(host, freecg, seed)
    start = collate([Structure(numbers, positions, cell, pbc)], CUTOFF, allow_isolated=True)
    assert torch.equal(evaluate(fresh, start, forces=False)["energy"], evaluate(bare, start, forces=False)["energy"])  # zero start
    generator = _generator(seed)
    model = _open(_host(host, dict(freecg, gate=True, init="normal"), seed), generator)
    energy = _energy_fn(model, pbc)
    reflection = HOSTS_TINY[host][0].get("parity", True)  # NequIP and Allegro built without parity: SO(3) only
    rtol = HOST_RTOL.get(host, 1e-9)
    assert_energy_model_symmetries(energy, positions, numbers, cell, reflection=reflection, trials=1, rtol=rtol, generator=generator)
    assert_forces_match_finite_differences(energy, positions, numbers, cell, coordinates=3, generator=generator)
