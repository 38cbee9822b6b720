"""MACE as a host (run in MACE's environment, ``.venv-mace``: scripts/test.sh): MACE + FreeCG
keeps MACE's symmetries in float64, its forces are the energy's gradient, it starts as MACE, the
energy stays smooth as a neighbour crosses the cutoff, the explicit-graph potential equals MACE's
own forward, and the trainer trains it."""

import numpy as np
import pytest
import torch

from freecg_plugin.adapters.mace import FreeCGMACEInteraction, MACEPotential, build_mace, splice_mace
from freecg_plugin.atomistic import Structure, collate, evaluate
from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host
from freecg_plugin.nn import FreeCGLayer
from freecg_plugin.testing import assert_energy_model_symmetries, assert_forces_match_finite_differences

ELEMENTS = [1, 6, 8]
CUTOFF = 4.0
TINY = {"channels": 8, "max_L": 1, "max_ell": 3, "correlation": 2, "num_interactions": 2, "num_bessel": 6, "radial_MLP": [16, 16]}
FREECG = {"groups": 2}


def _host(freecg, seed=3):
    torch.manual_seed(seed)
    return build_host(ModelConfig("mace", dict(TINY), CUTOFF, freecg), HostStatistics(ELEMENTS, -5.0, 3.0, 6.0, seed=seed)).double()


def _open(model, generator, scale=0.3):
    """Random FreeCG weights (zero at the start) large enough to show any symmetry error."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FreeCGLayer):
                for parameter in module.parameters():
                    parameter.copy_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return model


def _energy_fn(model, pbc=False):
    def energy(positions, numbers, cell=None):
        return evaluate(model, collate([Structure(numbers, positions, cell, pbc)], CUTOFF), forces=False)["energy"].sum()

    return energy


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


@pytest.fixture
def molecule(generator):
    positions = torch.randn(7, 3, dtype=torch.float64, generator=generator) * 1.1
    return positions, torch.tensor([6, 1, 8, 1, 6, 8, 1])


@pytest.mark.parametrize("freecg", [FREECG, {**FREECG, "enhancer_out": 2}], ids=["bias per channel", "bias per 4 channels"])
def test_mace_plus_freecg_symmetries_and_forces(molecule, generator, freecg):
    model = _open(_host(freecg), generator)
    assert sum(isinstance(m, FreeCGMACEInteraction) for m in model.modules()) == TINY["num_interactions"]
    assert_energy_model_symmetries(_energy_fn(model), *molecule, reflection=True, generator=generator)
    assert_forces_match_finite_differences(_energy_fn(model), *molecule, generator=generator)


def test_periodic_cell_symmetries_and_forces(generator):
    cell = torch.tensor([[6.0, 0.0, 0.0], [1.1, 5.6, 0.0], [-0.6, 0.8, 6.2]], dtype=torch.float64)
    positions = torch.rand(8, 3, dtype=torch.float64, generator=generator) @ cell
    numbers = torch.tensor([8, 1, 1, 8, 1, 1, 6, 6])
    model = _open(_host(FREECG), generator)
    assert_energy_model_symmetries(_energy_fn(model, True), positions, numbers, cell, reflection=True, generator=generator)
    assert_forces_match_finite_differences(_energy_fn(model, True), positions, numbers, cell, generator=generator)


def test_mace_plus_freecg_starts_as_mace_built_or_spliced(molecule):
    graph = collate([Structure(molecule[1], molecule[0])], CUTOFF)
    bare, built = evaluate(_host(None), graph), evaluate(_host(FREECG), graph)
    assert torch.equal(built["energy"], bare["energy"]) and torch.allclose(built["forces"], bare["forces"], rtol=0, atol=1e-12)
    model = _host(None)
    spliced = MACEPotential(splice_mace(model.model, FREECG), ELEMENTS, model.mean, model.std)
    again = evaluate(spliced, graph)
    assert torch.equal(again["energy"], bare["energy"]) and torch.allclose(again["forces"], bare["forces"], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="already has FreeCG"):
        splice_mace(model.model, FREECG)
    with pytest.raises(ValueError, match="expected a mace.modules.MACE"):
        splice_mace(torch.nn.Linear(2, 2), FREECG)


def test_freecg_weights_learn_from_the_first_step(molecule):
    model = _host(FREECG)
    out = evaluate(model, collate([Structure(molecule[1], molecule[0])], CUTOFF), training=True)
    (out["energy"].square().sum() + out["forces"].square().sum()).backward()
    layers = [m for m in model.modules() if isinstance(m, FreeCGLayer)]
    for weight in [layer.group_cg.weight for layer in layers] + [layer.enhancer.linear.weight for layer in layers]:
        assert weight.grad is not None and weight.grad.abs().max() > 0


def test_energy_and_forces_are_continuous_as_a_neighbour_crosses_the_cutoff(generator):
    """An oxygen moves along x past the cutoff of a small molecule's nearest atom: the energy and
    forces just inside and just outside differ by no more than the step itself makes them."""
    model = _open(_host(FREECG), generator)
    base = torch.tensor([[0.0, 0.0, 0.0], [0.95, 0.1, 0.0], [-0.3, 0.9, 0.1]], dtype=torch.float64)
    numbers = torch.tensor([8, 1, 1, 8])

    def at(x):
        positions = torch.cat([base, torch.tensor([[x, 0.0, 0.0]], dtype=torch.float64)])
        graph = collate([Structure(numbers, positions)], CUTOFF, allow_isolated=True)
        out = evaluate(model, graph)
        return out["energy"].item(), out["forces"]

    crossing = 0.95 + (CUTOFF**2 - 0.1**2) ** 0.5  # the last neighbour, the hydrogen at (0.95, 0.1, 0), leaves here
    inside, outside = at(crossing - 1e-6), at(crossing + 1e-6)
    assert abs(inside[0] - outside[0]) < 1e-8
    assert (inside[1] - outside[1]).abs().max() < 1e-6
    far_inside = at(crossing - 0.5)
    assert abs(far_inside[0] - inside[0]) > 1e-6  # the neighbour matters inside: the check can fail


def test_the_explicit_graph_potential_equals_maces_own_forward(molecule):
    """MACEPotential's edges (our convention) give the energy and forces of MACE's own graph."""
    potential = _host(FREECG)
    _open(potential, torch.Generator().manual_seed(5))
    positions, numbers = molecule
    graph = collate([Structure(numbers, positions)], CUTOFF)
    ours = evaluate(potential, graph)
    src, dst = graph.edge_index
    data = {
        "positions": positions.clone().requires_grad_(True),
        "node_attrs": torch.nn.functional.one_hot(torch.tensor([ELEMENTS.index(int(z)) for z in numbers]), 3).double(),
        "edge_index": torch.stack([dst, src]),  # MACE: sender, receiver; the vector points sender -> receiver
        "shifts": torch.zeros(graph.edge_index.shape[1], 3, dtype=torch.float64),
        "batch": torch.zeros(len(numbers), dtype=torch.long),
        "ptr": torch.tensor([0, len(numbers)]),
        "cell": torch.zeros(1, 3, 3, dtype=torch.float64),
    }
    theirs = potential.model(data, training=False, compute_force=True)
    assert torch.allclose(ours["energy"], potential.std * theirs["energy"] + potential.mean, rtol=1e-12)
    assert torch.allclose(ours["forces"], potential.std * theirs["forces"], rtol=1e-9, atol=1e-12)


def test_build_mace_takes_maces_defaults():
    model = build_mace(ELEMENTS, CUTOFF, 6.0)
    assert str(model.interactions[0].node_feats_irreps) == "128x0e" and str(model.interactions[1].node_feats_irreps) == "128x0e+128x1o"
    assert np.allclose(model.atomic_energies_fn.atomic_energies.numpy(), 0.0)


def test_checkpoints_stay_unpickled_under_maces_setting(tmp_path):
    """Importing mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the whole process; the
    project's readers ask for weights only explicitly, which that setting does not override."""
    import os

    import mace  # noqa: F401

    from freecg_plugin.checkpoint import read_checkpoint

    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == "1"
    ran = tmp_path / "ran"
    torch.save({"state_dict": _Unpickles(str(ran))}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="evil.ckpt"):
        read_checkpoint(tmp_path / "evil.ckpt")
    assert not ran.exists()


class _Unpickles:
    """Unpickling it would create a file (what a malicious checkpoint could do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_widened_mace_has_mace_plus_freecg_parameter_count():
    from freecg_plugin.compare.equal_parameters import parameter_count, widen_host

    wide = widen_host("mace", dict(TINY), CUTOFF, FREECG, None, ELEMENTS)
    target = parameter_count("mace", dict(TINY), CUTOFF, FREECG, None, ELEMENTS)
    assert wide.target == target and abs(wide.parameters / target - 1) <= 0.05, (wide.parameters, target)
    assert wide.args["channels"] > TINY["channels"]


def test_a_shared_enhancer_bias_scales_its_block_of_channels_alike(molecule, generator):
    """``enhancer_out`` 2 of 8 channels: each bias multiplies the edge weights of 4 neighbouring
    channels alike, on every CG path; a value that does not divide the channels is refused."""
    model = _host({**FREECG, "enhancer_out": 2})
    block = next(m for m in model.modules() if isinstance(m, FreeCGMACEInteraction))
    assert block.freecg.enhancer.linear.out_features == 2 and block.channels_per_bias == 4 and block.tp_paths > 1
    seen = []
    block.block.conv_tp.register_forward_hook(lambda module, inputs, output: seen.append(inputs[2].detach()))
    graph = collate([Structure(molecule[1], molecule[0])], CUTOFF)
    evaluate(model, graph, forces=False)  # zero enhancer weights: MACE's own edge weights
    with torch.no_grad():
        block.freecg.enhancer.linear.weight.copy_(torch.randn(block.freecg.enhancer.linear.weight.shape, generator=generator))
    evaluate(model, graph, forces=False)
    plain, scaled = (w.view(w.shape[0], block.tp_paths, 2, 4) for w in seen)
    keep = plain.abs().amin(dim=(1, 2, 3)) > 1e-8
    factor = (scaled / plain)[keep]  # 1 + b_ij of the channel's block
    assert torch.allclose(factor, factor[..., :1].expand_as(factor), atol=1e-9)  # shared within a block
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), atol=1e-9)  # and by every CG path
    assert (factor[:, 0, 0, 0] - factor[:, 0, 1, 0]).abs().max() > 1e-3  # the two blocks differ
    with pytest.raises(ValueError, match="enhancer_out 3 does not divide MACE's 8 channels"):
        _host({**FREECG, "enhancer_out": 3})


def test_default_paths_are_those_the_operand_feeds(molecule, generator):
    """B carries only the node features' irreps (scalars in the first block, 0e+1o after): the
    default paths are those; with all 23 paths of 0e+1o+2e+3o (``paths: all``), the others
    contribute nothing."""
    blocks = [m for m in _host(FREECG).modules() if isinstance(m, FreeCGMACEInteraction)]
    assert [len(b.freecg.group_cg.paths) for b in blocks] == [4, 10]
    assert all(p.irreps[1].l == 0 for p in blocks[0].freecg.group_cg.paths)
    model = _open(_host({**FREECG, "paths": "all"}), generator)
    graph = collate([Structure(molecule[1], molecule[0])], CUTOFF)
    before = evaluate(model, graph)
    with torch.no_grad():
        for block in (m for m in model.modules() if isinstance(m, FreeCGMACEInteraction)):
            operand = {ir for _, ir in block.block.node_feats_irreps}
            cg = block.freecg.group_cg
            assert len(cg.paths) == 23
            for i, path in enumerate(cg.paths):
                if path.irreps[1] not in operand:
                    cg.weight[:, i] = 0.0
    after = evaluate(model, graph)
    assert torch.allclose(before["energy"], after["energy"], rtol=0, atol=1e-12)
    assert torch.allclose(before["forces"], after["forces"], rtol=0, atol=1e-12)
    assert not torch.allclose(before["energy"], evaluate(_host(FREECG), graph)["energy"])  # the FreeCG term is there
    default = _host(FREECG)
    default.load_state_dict(model.state_dict())  # a model saved with every path loads into the default's
    loaded = evaluate(default, graph)
    assert torch.allclose(before["energy"], loaded["energy"], rtol=1e-10, atol=1e-12)  # rescaled weights: rounding only
    assert torch.allclose(before["forces"], loaded["forces"], rtol=1e-10, atol=1e-10)
