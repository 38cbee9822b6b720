import pytest
import torch

from freecg_plugin import FreeCGConfig, FreeCGLayer
from freecg_plugin.testing import (
    Equivariant,
    assert_equivariant,
    assert_permutation_equivariant,
)

SMALL = dict(channels=12, groups=3, enhancer_out=4)


def _messages(layer, n, generator):
    dim, c = layer.builder.dim, layer.builder.channels
    return torch.randn(n, dim, c, generator=generator), torch.randn(n, dim, c, generator=generator)


def _nonzero(layer, generator):
    if layer.group_cg is not None:
        torch.nn.init.normal_(layer.group_cg.weight, generator=generator)
    return layer


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(irreps="0e+1o+2e+3o", paths=None),
        dict(irreps="1o", paths=["1o x 1o -> 1o"], symmetry="SO3"),
        dict(keep_self_update=True, shift=4),
    ],
)
def test_composed_layer_equivariance(overrides, float64, generator):
    layer = _nonzero(FreeCGLayer(**{**SMALL, **overrides}), generator)
    a, b = _messages(layer, 5, generator)
    spec = Equivariant(layer.config.irreps, 1)
    reflection = layer.config.symmetry == "O3"
    assert_equivariant(layer, [a, b], [spec, spec], [spec], reflection=reflection, generator=generator)
    v_j, sh = _messages(layer, 7, generator)[0], torch.randn(7, layer.builder.dim, generator=generator)
    if layer.enhancer is not None and reflection:
        assert_equivariant(layer.edge_bias, [v_j, sh], [spec, Equivariant(layer.config.irreps, 1)], [Equivariant()], generator=generator)


def test_permutation_equivariance_over_atoms(float64, generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    a, b = _messages(layer, 9, generator)
    assert_permutation_equivariant(layer, [a, b], [0, 0], [0], generator=generator)


def test_write_back_is_paper_form(float64, generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    a, b = _messages(layer, 4, generator)
    edges = layer.builder
    products = layer.group_cg(edges(a), edges(b))
    expected = a + edges.merge(torch.roll(products, -layer.shuffle.shift_groups, dims=1))
    assert torch.allclose(layer(a, b), expected)
    assert layer.shuffle.shift_groups != 0


def test_identity_start_reproduces_host_update(float64, generator):
    layer = FreeCGLayer(**SMALL, keep_self_update=True, init="zeros")
    a, b = _messages(layer, 4, generator)
    assert torch.equal(layer(a, b), a + b)


@pytest.mark.parametrize(
    "switches, parts",
    [
        (dict(group_cg=False, shuffle=False, enhancer=False), (False, 0, False)),
        (dict(shuffle=False, enhancer=False), (True, 0, False)),
        (dict(enhancer=False), (True, 1, False)),
        (dict(), (True, 1, True)),
    ],
)
def test_ablation_switches(switches, parts, float64, generator):
    layer = FreeCGLayer(FreeCGConfig.from_dict({**SMALL, **switches}))
    has_cg, shuffled, has_enhancer = parts
    assert (layer.group_cg is not None) == has_cg
    assert (layer.shuffle.shift_groups != 0) == bool(shuffled)
    assert (layer.enhancer is not None) == has_enhancer
    if not has_cg:
        a, b = _messages(layer, 3, generator)
        assert torch.equal(layer(a, b), a + b)  # the host's own update
    if not has_enhancer:
        with pytest.raises(RuntimeError, match="enhancer=False"):
            layer.edge_bias(torch.zeros(1, 8, 12), torch.zeros(1, 8))


def test_config_errors():
    with pytest.raises(ValueError, match="unknown FreeCG config keys \\['grups'\\]"):
        FreeCGConfig.from_dict({"grups": 4})
    with pytest.raises(ValueError, match="enable group_cg"):
        FreeCGLayer(**SMALL, group_cg=False)
    with pytest.raises(ValueError, match="G \\* K != channels"):
        FreeCGLayer(channels=10, groups=4)


def test_config_round_trip():
    config = FreeCGConfig(**SMALL, paths=[(1, -1, 1, -1, 2, 1)])
    assert config.to_dict()["paths"] == ["1o x 1o -> 2e"]
    assert FreeCGLayer(FreeCGConfig.from_dict(config.to_dict())).group_cg.paths == FreeCGLayer(config).group_cg.paths


def test_reference_sizes():
    layer = FreeCGLayer()
    assert layer.group_cg.weight.numel() == 65_536
    assert layer.enhancer.linear.weight.shape == (8, 256)


def test_state_dict_round_trip(generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    other = FreeCGLayer(**SMALL)
    other.load_state_dict(layer.state_dict())
    a, b = _messages(layer, 3, generator)
    assert torch.equal(other(a, b), layer(a, b))
    assert set(layer.state_dict()) == {"group_cg.weight", "enhancer.linear.weight"}


def test_torch_export_with_dynamic_atoms(generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    a, b = _messages(layer, 6, generator)
    atoms = torch.export.Dim("atoms", min=2)
    program = torch.export.export(layer, (a, b), dynamic_shapes=({0: atoms}, {0: atoms}))
    a2, b2 = _messages(layer, 11, generator)
    assert torch.allclose(program.module()(a2, b2), layer(a2, b2), atol=1e-6)


def test_compiles_without_graph_breaks(generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    a, b = _messages(layer, 6, generator)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")  # fullgraph: a break raises
    assert torch.allclose(compiled(a, b), layer(a, b), atol=1e-6)  # compiled: torch contraction; eager: kernel


def test_torchscript(generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    scripted = torch.jit.script(layer)
    a, b = _messages(layer, 5, generator)
    assert torch.allclose(scripted(a, b), layer(a, b), atol=1e-6)  # scripted: torch contraction; eager: kernel
