import pytest
import torch

from freecg_plugin import CGPath, GroupCGTransform, enumerate_paths
from freecg_plugin.testing import Equivariant, assert_equivariant, e3nn_reference_group_cg


def _inputs(module, n, dtype, generator):
    g, k = module.groups, module.edges_per_group
    x1 = torch.randn(n, g, k, module.irreps_in1.dim, dtype=dtype, generator=generator)
    x2 = torch.randn(n, g, k, module.irreps_in2.dim, dtype=dtype, generator=generator)
    return x1, x2


def test_reference_paths_with_parity():
    paths = enumerate_paths("1o+2e")
    assert [str(p) for p in paths] == ["1o x 1o -> 2e", "1o x 2e -> 1o", "2e x 1o -> 1o", "2e x 2e -> 2e"]


def test_paths_without_parity():
    paths = enumerate_paths("1o+2e", symmetry="SO3")
    assert len(paths) == 8
    assert CGPath.parse("1o x 1o -> 1o") in paths


def test_paths_with_scalars_and_higher_l():
    paths = enumerate_paths("0e+1o+2e+3o")
    assert all(p.allowed("O3") for p in paths)
    assert CGPath.parse("0e x 3o -> 3o") in paths and CGPath.parse("1o x 1o -> 1o") not in paths
    # every (l1, l2, l3) combination satisfying the triangle rule with matching parity is there
    expected = sum(1 for a in range(4) for b in range(4) for c in range(4) if abs(a - b) <= c <= a + b and (-1) ** (a + b) == (-1) ** c)
    assert len(paths) == expected


def test_path_parsing_round_trip():
    path = CGPath.parse((2, 1, 1, -1, 1, -1))
    assert str(path) == "2e x 1o -> 1o" and CGPath.parse(str(path)) == path
    with pytest.raises(ValueError, match="cannot read CG path"):
        CGPath.parse("1o ** 2e")


@pytest.mark.parametrize(
    "irreps, groups, k, symmetry, paths",
    [
        ("1o+2e", 32, 8, "O3", None),
        ("1o+2e", 4, 3, "SO3", None),
        ("0e+1o+2e", 2, 4, "O3", ["0e x 1o -> 1o", "1o x 1o -> 0e", "2e x 2e -> 2e"]),
        ("1o+2e+3o", 3, 2, "O3", None),
        ("1o", 5, 2, "SO3", None),
    ],
)
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_matches_e3nn_reference(irreps, groups, k, symmetry, paths, dtype, rtol, kernel, generator):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        module = GroupCGTransform(irreps, groups, k, paths=paths, symmetry=symmetry, kernel=kernel)
        torch.nn.init.normal_(module.weight, generator=generator)  # large weights: a real test
        reference = e3nn_reference_group_cg(module)
        x1, x2 = _inputs(module, 7, dtype, generator)
        x1.requires_grad_(True)
        x2.requires_grad_(True)
        # "auto" runs the compiled kernel for every K it covers (all but K = 3 here)
        assert module._kernel_applies(x1, x2) == (kernel == "auto" and k != 3)
        ours = module(x1, x2)
        ref = reference(x1, x2)
        scale = ref.abs().max()
        assert scale > 0.1
        assert (ours - ref).abs().max() <= rtol * scale
        # gradients agree too
        g_ours = torch.autograd.grad(ours.square().sum(), (x1, x2, module.weight))
        g_ref = torch.autograd.grad(ref.square().sum(), (x1, x2, module.weight))
        for a, b in zip(g_ours, g_ref):
            assert (a - b).abs().max() <= rtol * b.abs().max()
    finally:
        torch.set_default_dtype(previous)


def test_output_irrep_without_path_is_zero(float64, generator):
    module = GroupCGTransform("1o+2e", 2, 2, paths=["1o x 1o -> 2e"])
    x1, x2 = _inputs(module, 3, torch.float64, generator)
    out = module(x1, x2)
    assert out[..., :3].abs().max() == 0 and out[..., 3:].abs().max() > 0


@pytest.mark.parametrize("irreps, symmetry", [("1o+2e", "O3"), ("0e+1o+2e+3o", "O3"), ("1o+2e", "SO3")])
def test_rotation_equivariance(irreps, symmetry, float64, generator):
    module = GroupCGTransform(irreps, 3, 2, symmetry=symmetry)
    torch.nn.init.normal_(module.weight, generator=generator)
    x1, x2 = _inputs(module, 5, torch.float64, generator)
    spec = Equivariant(irreps, -1)
    # SO3 paths like 1o x 1o -> 1o are not reflection-equivariant, so only O3 checks reflections
    assert_equivariant(module, [x1, x2], [spec, spec], [spec], reflection=(symmetry == "O3"), generator=generator)


def test_so3_paths_break_reflection(float64, generator):
    module = GroupCGTransform("1o", 2, 2, symmetry="SO3")  # only 1o x 1o -> 1o: a cross product
    torch.nn.init.normal_(module.weight, generator=generator)
    x1, x2 = _inputs(module, 4, torch.float64, generator)
    spec = Equivariant("1o", -1)
    assert_equivariant(module, [x1, x2], [spec, spec], [spec], reflection=False, generator=generator)
    with pytest.raises(AssertionError, match="reflection"):
        assert_equivariant(module, [x1, x2], [spec, spec], [spec], reflection=True, generator=generator)


def test_weights_are_per_group(float64, generator):
    module = GroupCGTransform("1o+2e", 4, 2)
    x1, x2 = _inputs(module, 3, torch.float64, generator)
    with torch.no_grad():
        module.weight.zero_()
        module.weight[2].normal_(generator=generator)
    out = module(x1, x2)
    assert out[:, 2].abs().max() > 0
    assert out[:, [0, 1, 3]].abs().max() == 0


def test_default_init_is_small():
    module = GroupCGTransform("1o+2e", 32, 8)
    assert module.weight.shape == (32, 4, 8, 8, 8)
    assert 0.008 < module.weight.abs().max() < 0.0095
    assert GroupCGTransform("1o+2e", 2, 2, init="zeros").weight.abs().max() == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(paths=["1o x 1o -> 1o"]), "forbidden under O3"),
        (dict(paths=["1o x 1o -> 3o"]), "not in irreps_out"),
        (dict(paths=["1o x 2e -> 2e"], symmetry="SO3"), None),  # allowed without parity
        (dict(paths=["1o x 1o -> 2e", "1o x 1o -> 2e"]), "duplicate"),
        (dict(symmetry="O2"), "symmetry must be"),
        (dict(init="uniform"), "init must be"),
        (dict(kernel="cuda"), "kernel must be"),
    ],
)
def test_bad_configurations(kwargs, message):
    if message is None:
        GroupCGTransform("1o+2e", 2, 2, **kwargs)
        return
    with pytest.raises(ValueError, match=message):
        GroupCGTransform("1o+2e", 2, 2, **kwargs)


@pytest.mark.parametrize("irreps, message", [("0e", "lmax 0"), ("2x1o", "multiplicity"), ("2e+1o", "sorted"), ("1x", "cannot parse")])
def test_bad_irreps(irreps, message):
    with pytest.raises(ValueError, match=message):
        GroupCGTransform(irreps, 2, 2)


def test_forbidden_path_by_triangle():
    with pytest.raises(ValueError, match=r"\|l1-l2\|"):
        GroupCGTransform("1o+2e+3o", 2, 2, paths=["1o x 1o -> 3o"])


def test_mismatched_input_shape():
    module = GroupCGTransform("1o+2e", 2, 2)
    with pytest.raises(ValueError, match="expected x1"):
        module(torch.randn(3, 2, 2, 3), torch.randn(3, 2, 2, 8))
