import pytest
import torch

from freecg_plugin import AttentionEnhancer
from freecg_plugin.testing import Equivariant, assert_equivariant


@pytest.mark.parametrize("irreps", ["1o+2e", "0e+1o+2e+3o"])
def test_invariant_under_rotation_and_reflection(irreps, float64, generator):
    enhancer = AttentionEnhancer(irreps, 6, 4)
    dim = enhancer.dim
    v_j = torch.randn(10, dim, 6, generator=generator)
    sh = torch.randn(10, dim, generator=generator)
    out = enhancer(v_j, sh)
    assert out.shape == (10, 4) and out.abs().max() > 0
    assert_equivariant(enhancer, [v_j, sh], [Equivariant(irreps, 1), Equivariant(irreps, 1)], [Equivariant()], generator=generator)


def test_is_the_linear_of_the_dot_product(float64, generator):
    enhancer = AttentionEnhancer("1o+2e", 3, 2)
    v_j, sh = torch.randn(4, 8, 3, generator=generator), torch.randn(4, 8, generator=generator)
    expected = (v_j * sh[:, :, None]).sum(1) @ enhancer.linear.weight.T
    assert torch.allclose(enhancer(v_j, sh), expected)
    assert enhancer(torch.zeros_like(v_j), sh).abs().max() == 0  # no bias: zero features, zero term


def test_wrong_parity_is_rejected_under_o3():
    with pytest.raises(ValueError, match="pseudo-scalar"):
        AttentionEnhancer("1e+2e", 4, 2)
    AttentionEnhancer("1e+2e", 4, 2, symmetry="SO3")


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="expected v_j"):
        AttentionEnhancer("1o+2e", 4, 2)(torch.randn(3, 8, 4), torch.randn(3, 3))
