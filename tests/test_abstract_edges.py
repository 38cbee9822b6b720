import pytest
import torch

from freecg_plugin import AbstractEdgeBuilder
from freecg_plugin.testing import Equivariant, assert_equivariant


@pytest.mark.parametrize("irreps, channels, groups", [("1o+2e", 256, 32), ("1o", 12, 3), ("0e+1o+2e+3o", 6, 6), ("1e+2e", 8, 1)])
def test_layout_and_round_trip(irreps, channels, groups, generator):
    builder = AbstractEdgeBuilder(irreps, channels, groups)
    k = channels // groups
    messages = torch.randn(5, builder.dim, channels, generator=generator)
    edges = builder(messages)
    assert edges.shape == (5, groups, k, builder.dim)
    # channel c = K g + k
    g, kk = groups - 1, k - 1
    assert torch.equal(edges[:, g, kk, :], messages[:, :, k * g + kk])
    assert torch.equal(builder.merge(edges), messages)


def test_invariant_to_neighbour_order(float64, generator):
    n_atoms, n_edges, channels = 6, 40, 16
    builder = AbstractEdgeBuilder("1o+2e", channels, 4)
    receivers = torch.randint(0, n_atoms, (n_edges,), generator=generator)
    edge_messages = torch.randn(n_edges, 8, channels, generator=generator)

    def aggregate(order):
        out = torch.zeros(n_atoms, 8, channels)
        return out.index_add(0, receivers[order], edge_messages[order])

    reference = builder(aggregate(torch.arange(n_edges)))
    shuffled = builder(aggregate(torch.randperm(n_edges, generator=generator)))
    assert (reference - shuffled).abs().max() < 1e-12


def test_rotation_equivariance(float64, generator):
    builder = AbstractEdgeBuilder("1o+2e", 12, 3)
    messages = torch.randn(4, 8, 12, generator=generator)
    assert_equivariant(builder, [messages], [Equivariant("1o+2e", 1)], [Equivariant("1o+2e", -1)], generator=generator)


@pytest.mark.parametrize(
    "args, message",
    [(("1o+2e", 256, 30), "G \\* K != channels"), (("0e", 8, 2), "lmax 0"), (("1o+2e", 0, 2), ">= 1")],
)
def test_bad_configurations(args, message):
    with pytest.raises(ValueError, match=message):
        AbstractEdgeBuilder(*args)


def test_explicit_group_size_must_match():
    with pytest.raises(ValueError, match="G \\* K != channels"):
        AbstractEdgeBuilder("1o+2e", 256, 32, edges_per_group=4)


def test_mismatched_irreps():
    builder = AbstractEdgeBuilder("1o+2e", 16, 4)
    with pytest.raises(ValueError, match=r"expected messages \[N, 8, 16\]"):
        builder(torch.randn(3, 3, 16))
    with pytest.raises(ValueError, match="merge"):
        builder.merge(torch.randn(3, 4, 4, 3))
