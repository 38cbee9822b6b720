"""The shared symmetry helpers must pass correct models and catch broken ones."""

import pytest
import torch

from freecg_plugin.testing import (
    Equivariant,
    assert_energy_model_symmetries,
    assert_equivariant,
    assert_forces_match_finite_differences,
    assert_permutation_equivariant,
)


def pair_energy(positions, numbers, cell=None):
    diff = positions[:, None] - positions[None]
    r = (diff.square().sum(-1) + torch.eye(len(positions), dtype=positions.dtype)).sqrt()
    weight = numbers[:, None].to(positions.dtype) * numbers[None].to(positions.dtype)
    mask = 1 - torch.eye(len(positions), dtype=positions.dtype)
    return (weight * torch.exp(-r) * mask).sum() / 2


def chiral_energy(positions, numbers, cell=None):
    # a triple product: rotation-invariant, flips sign under reflection
    return pair_energy(positions, numbers) + torch.linalg.det(positions[1:4] - positions[0]) * 0.1


@pytest.fixture
def molecule(generator):
    return torch.randn(6, 3, dtype=torch.float64, generator=generator) * 1.5, torch.tensor([1, 6, 8, 1, 7, 6])


def test_correct_model_passes(molecule, generator):
    assert_energy_model_symmetries(pair_energy, *molecule, generator=generator)
    assert_forces_match_finite_differences(pair_energy, *molecule, generator=generator)


@pytest.mark.parametrize(
    "broken, message",
    [
        (lambda p, z, c: pair_energy(p, z) + p[:, 0].sum(), "rotation"),
        (chiral_energy, "reflection"),
        (lambda p, z, c: pair_energy(p, z) * (1 + 0.1 * torch.tanh(p[0, 0])), "rotation"),
        (lambda p, z, c: pair_energy(p, z) + (p[0] - p[1]).norm() * z[0], "permutation"),
    ],
)
def test_broken_models_are_caught(broken, message, molecule, generator):
    with pytest.raises(AssertionError, match=message):
        assert_energy_model_symmetries(broken, *molecule, generator=generator)


def test_translation_is_checked(molecule, generator):
    with pytest.raises(AssertionError, match="translation"):
        assert_energy_model_symmetries(lambda p, z, c: pair_energy(p, z) + p.sum(0).norm(), *molecule, generator=generator)


def test_wrong_forces_are_caught(molecule, generator):
    class WrongForces(torch.autograd.Function):
        @staticmethod
        def forward(ctx, p):
            ctx.save_for_backward(p)
            return p.square().sum()

        @staticmethod
        def backward(ctx, grad):
            (p,) = ctx.saved_tensors
            return grad * p  # should be 2 p

    with pytest.raises(AssertionError, match="finite differences"):
        assert_forces_match_finite_differences(lambda p, z, c: WrongForces.apply(p), *molecule, generator=generator)


def test_equivariance_helper_catches_wrong_irreps(float64, generator):
    x = torch.randn(4, 8, generator=generator)
    identity = lambda t: t  # noqa: E731
    assert_equivariant(identity, [x], [Equivariant("1o+2e")], [Equivariant("1o+2e")], generator=generator)
    with pytest.raises(AssertionError):
        assert_equivariant(identity, [x], [Equivariant("1o+2e")], [Equivariant("1e+2e")], generator=generator)


def test_permutation_helper_catches_mixing(float64, generator):
    x = torch.randn(5, 3, generator=generator)
    assert_permutation_equivariant(lambda t: t * 2, [x], [0], [0], generator=generator)
    with pytest.raises(AssertionError, match="permutation"):
        assert_permutation_equivariant(lambda t: t.cumsum(0), [x], [0], [0], generator=generator)
