import pytest
import torch

spk = pytest.importorskip("schnetpack")
from schnetpack import properties  # noqa: E402

from freecg_plugin.adapters.schnetpack import (  # noqa: E402
    FreeCGPaiNNInteraction,
    FreeCGSO3Convolution,
    PaiNNFreeCG,
    SO3netFreeCG,
    spk_to_e3nn_basis,
    splice_painn,
    splice_so3net,
)
from freecg_plugin.testing import (  # noqa: E402
    assert_energy_model_symmetries,
    assert_forces_match_finite_differences,
)

CUTOFF = 4.0
SO3NET_RTOL = 1e-5  # host constants are float32-exact (see test_so3net_freecg_symmetries_and_forces)
F = 8


def representation(kind, freecg=None, **extra):
    common = dict(
        n_atom_basis=F,
        n_interactions=2,
        radial_basis=spk.nn.GaussianRBF(n_rbf=6, cutoff=CUTOFF),
        cutoff_fn=spk.nn.CosineCutoff(CUTOFF),
        **extra,
    )
    if kind == "painn":
        return PaiNNFreeCG(**common, freecg=freecg) if freecg is not None else spk.representation.PaiNN(**common)
    common.setdefault("lmax", 2)
    return SO3netFreeCG(**common, freecg=freecg) if freecg is not None else spk.representation.SO3net(**common)


def potential(rep, dtype=torch.float64, forces=False):
    """SchNetPack builds its modules in float32 only; symmetry tests convert to float64."""
    outputs = [spk.atomistic.Atomwise(n_in=F, output_key="energy")]
    if forces:
        outputs.append(spk.atomistic.Forces(energy_key="energy", force_key="forces"))
    return spk.model.NeuralNetworkPotential(
        representation=rep, input_modules=[spk.atomistic.PairwiseDistances()], output_modules=outputs
    ).to(dtype)


def randomise(module, generator, scale=0.3):
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


def spk_inputs(positions, numbers):
    n = len(numbers)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j  # all pairs: the cutoff function removes distant ones smoothly
    return {
        properties.Z: numbers,
        properties.R: positions,
        properties.idx_i: i[keep],
        properties.idx_j: j[keep],
        properties.offsets: torch.zeros(int(keep.sum()), 3, dtype=positions.dtype),
        properties.idx_m: torch.zeros(n, dtype=torch.long),
        properties.n_atoms: torch.tensor([n]),
    }


def energy_fn(model):
    return lambda positions, numbers, cell: model(spk_inputs(positions, numbers))["energy"]


@pytest.fixture
def molecule(generator):
    positions = torch.randn(7, 3, dtype=torch.float64, generator=generator) * 1.2
    return positions, torch.tensor([6, 1, 8, 1, 6, 7, 1])


@pytest.mark.parametrize("freecg", [{"groups": 2}, {"groups": 4, "shuffle": False}, {"groups": 2, "enhancer_per_channel": True}])
def test_painn_freecg_symmetries_and_forces(freecg, molecule, generator):
    model = potential(randomise(representation("painn", freecg), generator))
    assert all(isinstance(m, FreeCGPaiNNInteraction) for m in model.representation.interactions)
    assert_energy_model_symmetries(energy_fn(model), *molecule, reflection=True, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *molecule, generator=generator)


def test_so3net_freecg_symmetries_and_forces(molecule, generator):
    model = potential(randomise(representation("so3net", {"groups": 2}), generator))
    assert all(isinstance(m, FreeCGSO3Convolution) for m in model.representation.so3convs)
    # SchNetPack generates its CG coefficients in complex64: the host itself is exact to ~1e-7 only
    assert_energy_model_symmetries(energy_fn(model), *molecule, reflection=True, rtol=SO3NET_RTOL, generator=generator)
    assert_forces_match_finite_differences(energy_fn(model), *molecule, generator=generator)


def test_so3net_host_has_parity_so_freecg_keeps_it(molecule, generator):
    from schnetpack.nn.ops.so3 import sh_indices

    product = spk.nn.so3.SO3TensorProduct(3)
    l, _ = sh_indices(3)
    sums = l[product.idx_in_1] + l[product.idx_in_2] + l[product.idx_out]
    assert (sums % 2 == 0).all()  # real CG: parity-odd couplings vanish
    model = potential(randomise(representation("so3net", {"groups": 2}), generator))
    assert model.representation.so3convs[0].freecg.config.symmetry == "O3"
    assert all(p.allowed("O3") for p in model.representation.so3convs[0].freecg.group_cg.paths)


def test_so3net_basis_change_is_exact(generator):
    from e3nn.o3 import Irrep, spherical_harmonics

    q = spk_to_e3nn_basis(3)
    r0 = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)  # (y, z, x) -> (x, y, z)
    for l in range(4):
        block = slice(l * l, (l + 1) ** 2)
        assert (q[block, block] - Irrep(l, 1).D_from_matrix(r0)).abs().max() < 1e-14
    assert (q @ q.T - torch.eye(16, dtype=torch.float64)).abs().max() < 1e-14
    points = torch.randn(50, 3, dtype=torch.float64, generator=generator)
    points = points / points.norm(dim=1, keepdim=True)
    y_spk = spk.nn.so3.RealSphericalHarmonics(3, dtype_str="float64")(points)
    y_e3nn = spherical_harmonics([0, 1, 2, 3], points, normalize=False, normalization="integral")
    assert (y_spk @ q.T - y_e3nn).abs().max() < 1e-6  # SchNetPack's constants are float32-exact
    assert (y_spk - y_e3nn).abs().max() > 0.5  # the bases do differ


@pytest.mark.parametrize("kind, splice", [("painn", splice_painn), ("so3net", splice_so3net)])
def test_splice_into_trained_model_keeps_outputs(kind, splice, molecule, generator):
    model = potential(randomise(representation(kind), generator))  # stands for a trained host
    inputs = spk_inputs(*molecule)
    before = model(dict(inputs))["energy"]
    splice(model.representation, {"groups": 2})
    after = model(dict(inputs))["energy"]
    assert torch.allclose(after, before, rtol=1e-12, atol=0)
    # the new weights are trainable: one step moves the energy
    new = [p for n, p in model.named_parameters() if "freecg" in n]
    assert new and all(p.abs().max() == 0 for p in new)
    loss = (model(dict(inputs))["energy"] - before - 1.0).square().sum()
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in new)


@pytest.mark.parametrize("kind", ["painn", "so3net"])
def test_state_dict_round_trip_and_torchscript(kind, molecule, generator):
    model = potential(randomise(representation(kind, {"groups": 2}), generator, scale=0.1), torch.float32, forces=True)
    other = potential(representation(kind, {"groups": 2}), torch.float32, forces=True)
    other.load_state_dict(model.state_dict())
    positions, numbers = molecule
    inputs = spk_inputs(positions.float(), numbers)
    expected = model(dict(inputs))
    assert torch.equal(other(dict(inputs))["energy"], expected["energy"])
    scripted = torch.jit.script(model)  # spkdeploy's path
    result = scripted(dict(inputs))
    assert torch.allclose(result["energy"], expected["energy"], atol=1e-5)
    assert torch.allclose(result["forces"], expected["forces"], atol=1e-5)


def test_bad_settings():
    with pytest.raises(ValueError, match="set by the host"):
        representation("painn", {"irreps": "1o+2e"})
    with pytest.raises(ValueError, match="set by the host"):
        representation("so3net", {"enhancer_per_channel": True})  # one filter block: nothing to share
    with pytest.raises(ValueError, match="forbidden under O3"):
        representation("painn", {"paths": ["1o x 1o -> 1o"]})
    with pytest.raises(ValueError, match="out of range"):
        splice_painn(representation("painn"), layers=[5])
    rep = splice_painn(representation("painn"))
    with pytest.raises(ValueError, match="already has FreeCG"):
        splice_painn(rep)
