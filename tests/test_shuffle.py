import pytest
import torch

from freecg_plugin import AbstractEdgeBuilder, AbstractEdgeShuffle
from freecg_plugin.nn import default_shift


def test_reference_default_is_48_channels():
    assert default_shift(32, 8) == 48
    assert AbstractEdgeShuffle(32, 8).shift_groups == 6


def test_channel_mapping_and_groups_stay_whole():
    groups, k, shift = 5, 3, 6
    builder = AbstractEdgeBuilder("1o", groups * k, groups)
    messages = torch.arange(groups * k, dtype=torch.float64).expand(1, 3, -1)  # value = channel
    out = builder.merge(AbstractEdgeShuffle(groups, k, shift)(builder(messages)))
    channels = torch.arange(groups * k)
    assert torch.equal(out[0, 0].long(), (channels + shift) % (groups * k))
    # every output group holds exactly one whole input group, in order
    for g in range(groups):
        block = out[0, 0, g * k : (g + 1) * k].long()
        assert torch.equal(block % k, torch.arange(k)) and len(set((block // k).tolist())) == 1


@pytest.mark.parametrize("groups, k", [(8, 32), (32, 8), (3, 5), (1, 4)])
def test_default_never_cuts_groups(groups, k):
    assert default_shift(groups, k) % k == 0


def test_shift_not_multiple_of_k_is_an_error():
    with pytest.raises(ValueError, match="not a multiple of K = 8"):
        AbstractEdgeShuffle(32, 8, shift=12)


def test_identity_for_ablations(generator):
    x = torch.randn(2, 4, 3, 8, generator=generator)
    assert AbstractEdgeShuffle(4, 3, 0)(x) is x
    assert torch.equal(AbstractEdgeShuffle(4, 3, 12)(x), x)  # a full turn
