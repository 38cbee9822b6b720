"""NequIP and Allegro + FreeCG: symmetries and forces through our shared helper, splicing, errors.

nequip's own model suite runs on the same builders in ``tests/nequip_suite`` (its own session).
"""

import pytest
import torch
from nequip.data import AtomicDataDict, compute_neighborlist_, from_dict
from nequip.nn import ForceStressOutput
from nequip.utils.global_state import set_global_state

from freecg_plugin.adapters.nequip_models import FreeCGAllegroModel, FreeCGModel, FreeCGNequIPGNNModel, splice_freecg
from freecg_plugin.adapters.nequip_nn import FreeCGEnvironmentContracter, FreeCGTensorProductScatter, freecg_irreps
from freecg_plugin.testing import assert_energy_model_symmetries, assert_forces_match_finite_differences

R_MAX = 3.5
TYPES = {1: 0, 6: 1, 8: 2}
COMMON = dict(
    seed=7,
    model_dtype="float64",
    type_names=["H", "C", "O"],
    r_max=R_MAX,
    avg_num_neighbors=5.0,
    per_type_energy_shifts={"H": 0.1, "C": -0.2, "O": 0.3},
    per_type_energy_scales={"H": 1.0, "C": 2.0, "O": 0.5},
)
NEQUIP = dict(num_layers=3, l_max=2, parity=True, num_features=8, radial_mlp_width=16)
ALLEGRO = dict(
    l_max=2,
    parity=True,
    radial_chemical_embed={"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 6},
    radial_chemical_embed_dim=8,
    num_layers=2,
    num_scalar_features=8,
    num_tensor_features=8,
    allegro_mlp_hidden_layers_width=8,
    scalar_embed_mlp_hidden_layers_width=8,
    readout_mlp_hidden_layers_width=8,
)


@pytest.fixture(scope="module", autouse=True)
def nequip_state():
    """nequip's builders need its global state; it also sets float64 as default, which we undo."""
    previous = torch.get_default_dtype()
    set_global_state()
    torch.set_default_dtype(previous)


def graph(positions, numbers, cell=None):
    data = {"pos": positions, "atom_types": torch.tensor([TYPES[int(z)] for z in numbers])}
    if cell is not None:
        data.update(cell=cell, pbc=torch.tensor([True, True, True]))
    return compute_neighborlist_(from_dict(data), r_max=R_MAX)


def energy_fn(model):
    """The energy model inside nequip's ``ForceStressOutput``: our helper takes the derivatives."""
    (outputs,) = [m for m in model.modules() if isinstance(m, ForceStressOutput)]
    return lambda positions, numbers, cell: outputs.func(graph(positions, numbers, cell))[AtomicDataDict.TOTAL_ENERGY_KEY].sum()


def randomise_freecg(model, generator, scale=0.3):
    """Give FreeCG weights (small at init) a size that makes any symmetry error visible."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "freecg" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * scale)
    return model


@pytest.fixture
def molecule(generator):
    positions = torch.randn(7, 3, dtype=torch.float64, generator=generator) * 1.1
    return positions, torch.tensor([6, 1, 8, 1, 6, 8, 1])


@pytest.fixture
def crystal(generator):
    cell = torch.tensor([[4.2, 0.0, 0.0], [0.7, 3.9, 0.0], [-0.4, 0.5, 4.4]], dtype=torch.float64)
    fractional = torch.rand(6, 3, dtype=torch.float64, generator=generator)
    return fractional @ cell, torch.tensor([8, 1, 1, 8, 1, 6]), cell


@pytest.mark.parametrize(
    "freecg",
    [
        {"edges_per_group": 4},
        {"edges_per_group": 2, "shuffle": False, "enhancer": False},
        {"edges_per_group": 4, "enhancer_per_channel": True},
    ],
)
def test_nequip_freecg_symmetries_and_forces(freecg, molecule, generator):
    model = randomise_freecg(FreeCGNequIPGNNModel(**COMMON, **NEQUIP, freecg=freecg), generator)
    scatters = [m for m in model.modules() if isinstance(m, FreeCGTensorProductScatter)]
    assert len(scatters) == 2  # the last block aggregates scalars only
    assert_energy_model_symmetries(energy_fn(model), *molecule, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *molecule, generator=generator)


def test_allegro_freecg_symmetries_and_forces(molecule, generator):
    model = randomise_freecg(FreeCGAllegroModel(**COMMON, **ALLEGRO, freecg={"groups": 2}), generator)
    assert sum(isinstance(m, FreeCGEnvironmentContracter) for m in model.modules()) == 2
    assert_energy_model_symmetries(energy_fn(model), *molecule, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *molecule, generator=generator)


@pytest.mark.parametrize("builder, host", [(FreeCGNequIPGNNModel, NEQUIP), (FreeCGAllegroModel, ALLEGRO)])
def test_periodic_cell_symmetries_and_forces(builder, host, crystal, generator, float64):
    freecg = {"groups": 2} if builder is FreeCGAllegroModel else {"edges_per_group": 4}
    model = randomise_freecg(builder(**COMMON, **host, freecg=freecg), generator)
    assert_energy_model_symmetries(energy_fn(model), *crystal, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *crystal, generator=generator)


@pytest.mark.parametrize("target, host", [("nequip.model.NequIPGNNModel", NEQUIP), ("allegro.model.AllegroModel", ALLEGRO)])
def test_splice_with_identity_start_keeps_the_host_outputs(target, host, molecule):
    from hydra.utils import get_method

    bare = get_method(target)(**COMMON, **host)
    spliced = FreeCGModel(
        **COMMON, host={"_target_": target, **host}, identity_start=True, freecg={"groups": 2} if "allegro" in target else {}
    )
    assert sum(p.numel() for p in spliced.parameters()) > sum(p.numel() for p in bare.parameters())
    e_bare = energy_fn(bare)(*molecule, None)
    e_spliced = energy_fn(spliced)(*molecule, None)
    torch.testing.assert_close(e_spliced, e_bare, rtol=1e-12, atol=0)
    # the new weights are live: one gradient step moves the FreeCG group CG weights
    e_spliced.backward()
    grads = [p.grad for n, p in spliced.named_parameters() if "freecg" in n and p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_splice_into_a_built_model_keeps_it_and_rejects_a_second_splice(molecule):
    from nequip.model import NequIPGNNModel

    model = NequIPGNNModel(**COMMON, **NEQUIP)
    before = energy_fn(model)(*molecule, None).detach()
    splice_freecg(model, {"layers": [1]}, identity_start=True)
    assert isinstance(model.model.func.layer1_convnet.conv.tp_scatter, FreeCGTensorProductScatter)
    assert not isinstance(model.model.func.layer0_convnet.conv.tp_scatter, FreeCGTensorProductScatter)
    torch.testing.assert_close(energy_fn(model)(*molecule, None).detach(), before, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="already has FreeCG"):
        splice_freecg(model, {"layers": [1]})


@pytest.mark.parametrize(
    "builder, host, freecg, message",
    [
        (FreeCGNequIPGNNModel, NEQUIP, {"layers": [2]}, r"layers \[2\] are not available"),
        (FreeCGNequIPGNNModel, NEQUIP, {"edges_per_group": 3}, "does not divide"),
        (FreeCGNequIPGNNModel, NEQUIP, {"groups": 2, "edges_per_group": 2}, "disagree"),
        (FreeCGNequIPGNNModel, NEQUIP, {"irreps": "1o"}, "set by the host"),
        (FreeCGNequIPGNNModel, NEQUIP, {"colour": "red"}, "unknown FreeCG config keys"),
        (FreeCGAllegroModel, ALLEGRO, {"enhancer": True}, "no per-neighbour atom features"),
        (FreeCGAllegroModel, ALLEGRO, {"group_cg": False, "shuffle": False}, "group_cg must be on"),
    ],
)
def test_bad_freecg_blocks_name_the_problem(builder, host, freecg, message):
    with pytest.raises(ValueError, match=message):
        builder(**COMMON, **host, freecg=freecg)


def test_freecg_model_host_errors():
    with pytest.raises(ValueError, match="_target_"):
        FreeCGModel(**COMMON, host={})
    with pytest.raises(ValueError, match="both inside `host` and beside it"):
        FreeCGModel(**COMMON, host={"_target_": "nequip.model.NequIPGNNModel", "r_max": 3.0, **NEQUIP})


def test_freecg_irreps():
    assert str(freecg_irreps("8x0e+8x1o+8x1e+8x2e", "1x0e+1x1o+1x2e+1x3o")) == "1x0e+1x1o+1x2e"
    with pytest.raises(ValueError, match="l >= 1"):
        freecg_irreps("16x0e", "1x0e+1x1o")
    with pytest.raises(ValueError, match="harmonics"):
        freecg_irreps("8x0e+8x1o", "1x0e+1x1e")
