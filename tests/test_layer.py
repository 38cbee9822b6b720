import pytest
import torch

from freecg_plugin import FreeCGConfig, FreeCGLayer
from freecg_plugin.nn import PAPER_LAYER, enumerate_paths
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
    """Random group CG and enhancer weights and open gates, so that every FreeCG term is visible."""
    if layer.group_cg is not None:
        torch.nn.init.normal_(layer.group_cg.weight, generator=generator)
    if layer.enhancer is not None:
        torch.nn.init.normal_(layer.enhancer.linear.weight, generator=generator)
    with torch.no_grad():
        for gate in (layer.gate, layer.enhancer_gate):
            if gate is not None:
                gate.fill_(0.7)
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
    features, sh = _messages(layer, 7, generator)[0], torch.randn(11, layer.builder.dim, generator=generator)
    source = torch.randint(0, 7, (11,), generator=generator)
    if layer.enhancer is not None and reflection:
        bias = lambda f, y: layer.edge_bias(f, y, source)  # noqa: E731
        assert_equivariant(bias, [features, sh], [spec, Equivariant(layer.config.irreps, 1)], [Equivariant()], generator=generator)


def test_permutation_equivariance_over_atoms(float64, generator):
    layer = _nonzero(FreeCGLayer(**SMALL), generator)
    a, b = _messages(layer, 9, generator)
    assert_permutation_equivariant(layer, [a, b], [0, 0], [0], generator=generator)


def test_write_back_default_and_paper_forms(float64, generator):
    a, b = _messages(FreeCGLayer(**SMALL), 4, generator)
    layer = _nonzero(FreeCGLayer(**SMALL), generator)  # the default: host update kept, normalised B
    edges = layer.builder
    normalised = edges(b) / torch.sqrt(1 + edges(b).square().mean(dim=-1, keepdim=True))
    products = layer.group_cg(edges(a), normalised)
    expected = a + b + edges.merge(torch.roll(products, -layer.shuffle.shift_groups, dims=1))
    assert torch.allclose(layer(a, b), expected)
    gated = _nonzero(FreeCGLayer(**SMALL, gate=True, init="normal"), generator)
    products = gated.group_cg(edges(a), normalised)
    assert torch.allclose(gated(a, b), a + b + 0.7 * edges.merge(torch.roll(products, -gated.shuffle.shift_groups, dims=1)))
    paper = _nonzero(FreeCGLayer(**SMALL, **PAPER_LAYER), generator)
    assert paper.gate is None and not paper.keep_self_update and not paper.operand_norm
    products = paper.group_cg(edges(a), edges(b))
    assert torch.allclose(paper(a, b), a + edges.merge(torch.roll(products, -paper.shuffle.shift_groups, dims=1)))
    assert paper.shuffle.shift_groups != 0


def test_default_layer_starts_as_its_host_and_learns_from_the_first_step(float64, generator):
    layer = FreeCGLayer(**SMALL)
    a, b = _messages(layer, 4, generator)
    assert layer.gate is None and layer.group_cg.weight.abs().max() == 0 and layer.enhancer.linear.weight.abs().max() == 0
    assert torch.equal(layer(a, b), a + b)
    features, sh = torch.randn(3, layer.builder.dim, 12, generator=generator), torch.randn(5, layer.builder.dim, generator=generator)
    bias = layer.edge_bias(features, sh, torch.tensor([0, 1, 2, 2, 0]))
    assert torch.equal(bias, torch.zeros(5, 4))
    (layer(a, b).square().sum() + bias.square().sum() + bias.sum()).backward()
    assert layer.group_cg.weight.grad.abs().max() > 0 and layer.enhancer.linear.weight.grad.abs().max() > 0


def test_gated_layer_starts_as_its_host_and_its_gate_learns(float64, generator):
    layer = FreeCGLayer(**SMALL, gate=True, init="normal")
    a, b = _messages(layer, 4, generator)
    assert layer.gate.detach() == 0 and layer.enhancer_gate.detach() == 0 and layer.group_cg.weight.std() > 0.5
    assert torch.equal(layer(a, b), a + b)
    layer(a, b).square().sum().backward()
    assert layer.gate.grad != 0 and layer.group_cg.weight.grad.abs().max() == 0  # the gate opens first
    with pytest.raises(ValueError, match="would never learn"):
        FreeCGLayer(**SMALL, gate=True)


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
            layer.edge_bias(torch.zeros(1, 8, 12), torch.zeros(1, 8), torch.zeros(1, dtype=torch.long))


def test_config_errors():
    with pytest.raises(ValueError, match="unknown FreeCG config keys \\['grups'\\]"):
        FreeCGConfig.from_dict({"grups": 4})
    with pytest.raises(ValueError, match="enable group_cg"):
        FreeCGLayer(**SMALL, group_cg=False)
    with pytest.raises(ValueError, match="G \\* K != channels"):
        FreeCGLayer(channels=10, groups=4)
    with pytest.raises(ValueError, match="a list of CG paths or 'all', got 'every'"):
        FreeCGConfig(**SMALL, paths="every")


def test_config_round_trip():
    config = FreeCGConfig(**SMALL, paths=[(1, -1, 1, -1, 2, 1)])
    assert config.to_dict()["paths"] == ["1o x 1o -> 2e"]
    assert FreeCGLayer(FreeCGConfig.from_dict(config.to_dict())).group_cg.paths == FreeCGLayer(config).group_cg.paths
    every = FreeCGConfig.from_dict({**SMALL, "paths": "all"})
    assert every.to_dict()["paths"] == "all"
    assert FreeCGLayer(every).group_cg.paths == enumerate_paths("1o+2e")


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
    gated = FreeCGLayer(**SMALL, gate=True, init="normal")
    assert set(gated.state_dict()) == {"group_cg.weight", "enhancer.linear.weight", "gate", "enhancer_gate"}


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
    layer = _nonzero(FreeCGLayer(**SMALL, gate=True, init="normal"), generator)
    scripted = torch.jit.script(layer)
    a, b = _messages(layer, 5, generator)
    assert torch.allclose(scripted(a, b), layer(a, b), atol=1e-6)  # scripted: torch contraction; eager: kernel
