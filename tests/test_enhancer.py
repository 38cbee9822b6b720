import pytest
import torch

from freecg_plugin import AttentionEnhancer
from freecg_plugin.testing import Equivariant, assert_equivariant


def _graph(enhancer, atoms, edges, generator):
    features = torch.randn(atoms, enhancer.dim, enhancer.channels, generator=generator)
    sh = torch.randn(edges, enhancer.dim, generator=generator)
    source = torch.randint(0, atoms, (edges,), generator=generator)
    return features, sh, source


@pytest.mark.parametrize("order", ["edges", "atoms"])
@pytest.mark.parametrize("irreps", ["1o+2e", "0e+1o+2e+3o"])
def test_invariant_under_rotation_and_reflection(irreps, order, float64, generator):
    enhancer = AttentionEnhancer(irreps, 6, 4, order=order)
    features, sh, source = _graph(enhancer, 5, 10, generator)
    out = enhancer(features, sh, source)
    assert out.shape == (10, 4) and out.abs().max() > 0
    spec = Equivariant(irreps, 1)
    assert_equivariant(lambda f, y: enhancer(f, y, source), [features, sh], [spec, spec], [Equivariant()], generator=generator)


@pytest.mark.parametrize("order", ["edges", "atoms"])
@pytest.mark.parametrize("bias", [False, True])
def test_is_the_linear_of_the_dot_product_in_either_order(order, bias, float64, generator):
    enhancer = AttentionEnhancer("1o+2e", 3, 2, bias=bias, order=order)
    features, sh, source = _graph(enhancer, 4, 9, generator)
    expected = enhancer.linear((features[source] * sh[:, :, None]).sum(1))
    assert torch.allclose(enhancer(features, sh, source), expected, rtol=1e-12, atol=1e-12)
    if not bias:  # zero features, zero term
        assert enhancer(torch.zeros_like(features), sh, source).abs().max() == 0


def test_auto_order_takes_the_cheaper_side():
    visnet = AttentionEnhancer("1o+2e", 256, 8)  # narrow output: the linear map per atom
    assert visnet.atoms_first(atoms=84, edges=84 * 20)
    assert not visnet.atoms_first(atoms=84, edges=20)  # fewer edges than atoms: on the edges
    wide = AttentionEnhancer("0e+1o", 128, 384)  # PaiNN-like, output 3C: more to gather per edge
    assert not wide.atoms_first(atoms=100, edges=2000)
    wide.order = "atoms"
    assert wide.atoms_first(atoms=100, edges=2000)
    with pytest.raises(ValueError, match="order must be one of"):
        AttentionEnhancer("1o+2e", 4, 2, order="nodes")


def test_wrong_parity_is_rejected_under_o3():
    with pytest.raises(ValueError, match="pseudo-scalar"):
        AttentionEnhancer("1e+2e", 4, 2)
    AttentionEnhancer("1e+2e", 4, 2, symmetry="SO3")


def test_mismatched_shapes():
    enhancer = AttentionEnhancer("1o+2e", 4, 2)
    with pytest.raises(ValueError, match="expected features"):
        enhancer(torch.randn(3, 8, 4), torch.randn(3, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="source \\[E\\]"):
        enhancer(torch.randn(3, 8, 4), torch.randn(5, 8), torch.zeros(4, dtype=torch.long))
