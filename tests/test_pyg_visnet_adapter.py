import pytest
import torch

pytest.importorskip("torch_geometric")
from torch_geometric.nn.models import ViSNet  # noqa: E402

from freecg_plugin.adapters.pyg_visnet import (  # noqa: E402
    FreeCGViS_MP,
    FreeCGViS_MP_Vertex,
    RadiusGraph,
    build_visnet,
    build_visnet_freecg,
    splice_visnet,
)
from freecg_plugin.nn import PAPER_LAYER  # noqa: E402
from freecg_plugin.testing import (  # noqa: E402
    assert_energy_model_symmetries,
    assert_forces_match_finite_differences,
)

SMALL = dict(lmax=2, num_heads=2, num_layers=2, hidden_channels=16, num_rbf=8, cutoff=4.0, max_num_neighbors=32)


def randomise_freecg(model, generator):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "freecg" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def energy_fn(model):
    def energy(positions, numbers, cell=None):
        y, _ = model(numbers, positions, torch.zeros(len(numbers), dtype=torch.long))
        return y.sum()

    return energy


@pytest.fixture
def molecule(generator):
    positions = torch.randn(8, 3, dtype=torch.float64, generator=generator) * 1.3
    return positions, torch.tensor([6, 1, 8, 1, 6, 7, 1, 1])


@pytest.mark.parametrize("vertex", [False, True])
def test_paper_model_symmetries_and_forces(vertex, molecule, float64, generator):
    model = randomise_freecg(build_visnet_freecg({"groups": 4}, vertex=vertex, **SMALL), generator)
    expected = FreeCGViS_MP_Vertex if vertex else FreeCGViS_MP
    assert all(type(layer) is expected for layer in model.representation_model.vis_mp_layers)
    assert_energy_model_symmetries(energy_fn(model), *molecule, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *molecule, generator=generator)


def test_bare_host_symmetries_and_forces(molecule, float64, generator):
    model = build_visnet(**SMALL)
    assert_energy_model_symmetries(energy_fn(model), *molecule, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *molecule, generator=generator)


def test_from_scratch_starts_as_the_bare_host_and_the_paper_layer_is_an_option(molecule, float64):
    torch.manual_seed(3)
    bare = build_visnet(**SMALL)
    torch.manual_seed(3)
    model = build_visnet_freecg({"groups": 4}, **SMALL)
    layer = model.representation_model.vis_mp_layers[0].freecg
    assert layer.keep_self_update and layer.gate is None and layer.group_cg.weight.abs().max() == 0
    assert layer.enhancer is not None and layer.enhancer.linear.out_features == SMALL["num_heads"]
    assert torch.equal(energy_fn(model)(*molecule), energy_fn(bare)(*molecule))
    assert sum(p.numel() for p in bare.parameters()) == sum(p.numel() for n, p in model.named_parameters() if "freecg" not in n)
    paper = build_visnet_freecg({"groups": 4, **PAPER_LAYER}, **SMALL).representation_model.vis_mp_layers[0].freecg
    assert not paper.keep_self_update and paper.group_cg.weight.abs().max() > 0


def test_enhancer_and_group_cg_change_the_energy(molecule, float64, generator):
    model = randomise_freecg(build_visnet_freecg({"groups": 4}, **SMALL), generator)
    energy = energy_fn(model)(*molecule)
    with torch.no_grad():
        for layer in model.representation_model.vis_mp_layers:
            layer.freecg.enhancer.linear.weight.zero_()
    assert energy_fn(model)(*molecule) != energy


def test_splice_into_trained_host_is_exact(molecule, float64, generator):
    host = ViSNet(**SMALL)
    with torch.no_grad():  # stands for trained weights
        for parameter in host.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    host.representation_model.distance = RadiusGraph(SMALL["cutoff"], SMALL["max_num_neighbors"])
    before = energy_fn(host)(*molecule)
    spliced = splice_visnet(host, {"groups": 4})
    assert torch.equal(energy_fn(spliced)(*molecule), before)
    layer = spliced.representation_model.vis_mp_layers[1].freecg
    assert layer.keep_self_update and layer.group_cg.weight.abs().max() == 0
    gated = splice_visnet(ViSNet(**SMALL), {"groups": 4, "gate": True, "init": "normal"}).representation_model.vis_mp_layers[1].freecg
    assert gated.gate.detach() == 0 and gated.group_cg.weight.abs().max() > 0  # with a gate: the gate starts closed


def test_batch_equals_each_molecule_alone(float64, generator):
    model = randomise_freecg(build_visnet_freecg({"groups": 4}, **SMALL), generator)
    a = torch.randn(5, 3, generator=generator) * 1.2
    b = torch.randn(7, 3, generator=generator) * 1.2 + 2.0  # overlapping in space: batch must separate them
    za, zb = torch.tensor([6, 1, 1, 8, 1]), torch.tensor([6, 6, 1, 1, 7, 1, 1])
    y, _ = model(torch.cat([za, zb]), torch.cat([a, b]), torch.tensor([0] * 5 + [1] * 7))
    ya, _ = model(za, a, torch.zeros(5, dtype=torch.long))
    yb, _ = model(zb, b, torch.zeros(7, dtype=torch.long))
    assert torch.allclose(y.view(-1), torch.cat([ya, yb]).view(-1), rtol=1e-12, atol=1e-12)


def test_radius_graph_matches_brute_force(generator):
    pos = torch.randn(30, 3, generator=generator) * 2
    batch = torch.tensor([0] * 12 + [1] * 18)
    edge_index, weight, vec = RadiusGraph(2.5, max_num_neighbors=100)(pos, batch)
    found = {(int(j), int(i)) for j, i in edge_index.T}
    expected = {(j, i) for i in range(30) for j in range(30) if batch[i] == batch[j] and (i == j or (pos[i] - pos[j]).norm() < 2.5)}
    assert found == expected
    assert torch.allclose(vec, pos[edge_index[0]] - pos[edge_index[1]])
    assert torch.all(weight[edge_index[0] == edge_index[1]] == 0)
    capped, _, _ = RadiusGraph(2.5, max_num_neighbors=3)(pos, batch)
    for i in range(30):  # the three nearest of each atom (fewer when it has fewer)
        neighbours = sorted((float((pos[i] - pos[j]).norm()), j) for j, t in expected if t == i and j != i)
        kept = {int(j) for j, t in capped.T if t == i and j != i}
        assert kept == {j for _, j in neighbours[:3]}
    with pytest.raises(ValueError, match="batch must be sorted"):
        RadiusGraph(2.5)(pos, batch.flip(0))


@pytest.mark.parametrize(
    "switches",
    [dict(group_cg=False, shuffle=False, enhancer=False), dict(shuffle=False, enhancer=False), dict(enhancer=False), dict(groups=8)],
)
def test_ablation_configs_build_and_run(switches, molecule):
    model = build_visnet_freecg(switches, **SMALL)
    positions, numbers = molecule
    y, _ = model(numbers, positions.float(), torch.zeros(len(numbers), dtype=torch.long))
    assert torch.isfinite(y).all()


def test_bad_settings():
    with pytest.raises(ValueError, match="set by the host"):
        build_visnet_freecg({"channels": 32}, **SMALL)
    with pytest.raises(ValueError, match="no CG path"):
        build_visnet_freecg({"groups": 4}, **{**SMALL, "lmax": 1})
    build_visnet_freecg({"groups": 4, "symmetry": "SO3"}, **{**SMALL, "lmax": 1})
    with pytest.raises(ValueError, match="already has FreeCG"):
        splice_visnet(build_visnet_freecg({"groups": 4}, **SMALL))


# --- explicit-graph potential: periodic cells, stress -------------------------------------------

from freecg_plugin.adapters.pyg_visnet import ViSNetPotential  # noqa: E402
from freecg_plugin.atomistic import Structure, collate, evaluate  # noqa: E402

CELL = torch.tensor([[6.0, 0.0, 0.0], [1.2, 5.5, 0.0], [-0.7, 0.9, 6.3]], dtype=torch.float64)


def potential_energy_fn(potential, pbc):
    def energy(positions, numbers, cell=None):
        graph = collate([Structure(numbers, positions, cell, pbc)], SMALL["cutoff"])
        return evaluate(potential, graph, forces=False)["energy"].sum()

    return energy


@pytest.fixture
def crystal(generator):
    positions = torch.rand(10, 3, dtype=torch.float64, generator=generator) @ CELL
    return positions, torch.tensor([8, 1, 1, 8, 1, 1, 3, 15, 16, 16]), CELL.clone()


def test_potential_matches_visnet_on_molecules(molecule, float64, generator):
    model = randomise_freecg(build_visnet_freecg({"groups": 4}, **SMALL), generator)
    potential = ViSNetPotential(model)
    assert torch.allclose(potential_energy_fn(potential, False)(*molecule), energy_fn(model)(*molecule), rtol=1e-12)


def test_periodic_symmetries_forces_and_stress(crystal, float64, generator):
    potential = ViSNetPotential(randomise_freecg(build_visnet_freecg({"groups": 4}, **SMALL), generator))
    energy = potential_energy_fn(potential, True)
    assert_energy_model_symmetries(energy, *crystal, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy, *crystal, generator=generator)
    positions, numbers, cell = crystal
    # stress = (1/V) dE/d(strain), against central differences of the energy
    stress = evaluate(potential, collate([Structure(numbers, positions, cell, True)], SMALL["cutoff"]), stress=True)["stress"][0]
    h, volume = 1e-5, torch.linalg.det(cell).abs()
    for a, b in [(0, 0), (1, 2), (2, 0)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[a, b] = strain[b, a] = h / 2 if a != b else h
        deform = lambda e: energy(
            positions @ (torch.eye(3, dtype=torch.float64) + e), numbers, cell @ (torch.eye(3, dtype=torch.float64) + e)
        )  # noqa: E731
        numeric = (deform(strain) - deform(-strain)) / (2 * h) / volume
        assert torch.allclose(numeric, stress[a, b], rtol=1e-6, atol=1e-9)  # symmetric strain h/2 + h/2
    assert torch.allclose(stress, stress.T)


def test_bad_inputs_are_named(crystal):
    positions, numbers, cell = crystal
    with pytest.raises(ValueError, match="structure 0: non-finite"):
        collate([Structure(numbers, positions.clone().fill_(float("nan")), cell, True)], 4.0)
    lonely = torch.tensor([[0.0, 0, 0], [0.9, 0, 0], [30.0, 0, 0]])
    with pytest.raises(ValueError, match=r"structure 1: atoms \[2\] have no neighbour"):
        collate([Structure(numbers[:3], positions[:3].float(), cell.float(), True), Structure(numbers[:3], lonely)], 4.0)
    with pytest.raises(ValueError, match="zero volume"):
        collate([Structure(numbers, positions, torch.zeros(3, 3, dtype=torch.float64), True)], 4.0)
    with pytest.raises(ValueError, match="no structures"):
        collate([], 4.0)


def test_energy_is_smooth_as_an_atom_crosses_the_cutoff(float64, generator):
    model = build_visnet_freecg({"groups": 4}, **SMALL)
    with torch.no_grad():  # all weights, biases included: ViSNet starts with zero biases, which hide jumps
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)
    potential = ViSNetPotential(model)
    numbers = torch.tensor([8, 6])
    cutoff = SMALL["cutoff"]

    def at(distance):  # a pair at `distance`; beyond the cutoff both atoms are alone
        positions = torch.tensor([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]], dtype=torch.float64)
        graph = collate([Structure(numbers, positions)], cutoff, allow_isolated=True)
        return float(evaluate(potential, graph, forces=False)["energy"][0])

    apart = at(cutoff + 1e-3)
    assert at(cutoff + 0.5) == pytest.approx(apart, abs=1e-12)
    gaps = [abs(at(cutoff - d) - apart) for d in (1e-1, 1e-2, 1e-3)]
    assert gaps[0] > 1e-8  # the pair does interact inside the cutoff
    assert gaps[1] < 0.2 * gaps[0] and gaps[2] < 0.2 * gaps[1], gaps  # a jump would leave a constant gap
    # the host's own message (kept when splicing for exactness) jumps: the check above can fail
    for layer in model.representation_model.vis_mp_layers:
        layer.smooth_cutoff = False
    assert abs(at(cutoff - 1e-4) - apart) > 1e-3
