"""Host + FreeCG starts as its host: exactly the host's energies and forces at initialisation (the
zero FreeCG weights, or closed gates), for every host the trainer builds, and they learn from the first step."""

import pytest
import torch
from helpers.tiny import HOSTS_TINY as TINY

from freecg_plugin.atomistic import Structure, collate, evaluate
from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host
from freecg_plugin.nn import FreeCGLayer


def _build(host, freecg):
    """Same seed, float64 (SchNetPack's radial basis cannot be built under a float64 default, so
    the models are built in float32 and converted; NequIP and Allegro build in float64)."""
    args, _ = TINY[host]
    torch.manual_seed(7)
    model = build_host(ModelConfig(host, args, 3.5, freecg), HostStatistics([1, 6, 8], -5.0, 3.0, 4.0, seed=7))
    return model.double()


def _molecule():
    generator = torch.Generator().manual_seed(1)
    positions = torch.randn(6, 3, generator=generator, dtype=torch.float64) * 0.8
    return collate([Structure(torch.tensor([8, 1, 1, 6, 1, 1]), positions)], 3.5)


@pytest.mark.parametrize("start", ["zero weights", "gate"])
@pytest.mark.parametrize("host", sorted(TINY))
def test_host_plus_freecg_reproduces_the_host_at_initialisation_and_learns(host, start):
    settings = dict(TINY[host][1], **({"gate": True, "init": "normal"} if start == "gate" else {}))
    graph = _molecule()
    bare, with_freecg = _build(host, None), _build(host, settings)
    layers = [m for m in with_freecg.modules() if isinstance(m, FreeCGLayer)]
    assert layers and all((layer.gate is not None) == (start == "gate") for layer in layers)
    expected, got = evaluate(bare, graph, training=True), evaluate(with_freecg, graph, training=True)
    assert got["energy"].dtype == torch.float64
    assert torch.equal(got["energy"], expected["energy"]), (got["energy"] - expected["energy"]).abs().max()
    assert torch.allclose(got["forces"], expected["forces"], rtol=0, atol=1e-12), (got["forces"] - expected["forces"]).abs().max()

    (got["energy"].square().sum() + got["forces"].square().sum()).backward()
    enhanced = [layer for layer in layers if layer.enhancer is not None]
    assert bool(enhanced) == (host != "allegro")  # Allegro takes no enhancer
    if start == "gate":  # the gates learn first (the weights behind a closed gate get no gradient yet)
        learners = [layer.gate for layer in layers], [layer.enhancer_gate for layer in enhanced]
    else:  # the zero weights learn at once
        learners = [layer.group_cg.weight for layer in layers], [layer.enhancer.linear.weight for layer in enhanced]
    for params in learners:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
        assert not params or any(p.grad.abs().max() > 0 for p in params), [float(p.grad.abs().max()) for p in params]


@pytest.mark.parametrize("host", sorted(TINY))
def test_the_paper_layer_departs_from_the_host(host):
    """The paper's write-back (no gate, raw product, xavier) stays available and is not the host."""
    from freecg_plugin.nn import PAPER_LAYER

    settings = dict(TINY[host][1], **PAPER_LAYER)
    if host != "visnet":
        settings.pop("keep_self_update")  # the other hosts have no separate self-update term
    graph = _molecule()
    bare, paper = evaluate(_build(host, None), graph), evaluate(_build(host, settings), graph)
    assert all(layer.gate is None for layer in _build(host, settings).modules() if isinstance(layer, FreeCGLayer))
    assert not torch.allclose(paper["forces"], bare["forces"], rtol=0, atol=1e-9)
