"""nequip's own model test suite on NequIP + FreeCG and Allegro + FreeCG.

Run in its own pytest session (``scripts/test.sh`` does it) with nequip's fixtures loaded as a
plugin: ``pytest -p nequip.utils.unittests.conftest tests/nequip_suite``. nequip's conftest sets
float64 as the session's default dtype, which must not leak into the rest of our suite.

The suite checks, in float32 and float64: equivariance, batching, numerical gradients (full and
partial forces), strict locality (Allegro), additivity at large separation, force smoothness and
embedding cutoff at r_max, isolated-atom energies, cross-frame gradients.
"""

import pytest
from nequip.utils.unittests.model_tests_basic import EnergyModelTestsMixin

TYPES = {  # and the settings both models share
    "type_names": ["H", "C", "O"],  # the suite's isolated-atom test builds one frame per type, three
    "r_max": 4.0,
    "avg_num_neighbors": 6.0,
    "per_type_energy_shifts": {"H": 0.1, "C": -0.2, "O": 0.3},
    "per_type_energy_scales": {"H": 1.5, "C": 0.9, "O": 1.1},
    "seed": 123,
    "l_max": 2,
    "parity": True,
}


class TestFreeCGNequIP(EnergyModelTestsMixin):
    @pytest.fixture(scope="class")
    @classmethod
    def config(cls):
        return {
            "_target_": "freecg_plugin.adapters.nequip_models.FreeCGNequIPGNNModel",
            **TYPES,
            "num_layers": 3,
            "num_features": 8,
            "radial_mlp_width": 16,
            # K = 4: two groups, so the shuffle moves whole groups for real
            "freecg": {"edges_per_group": 4, "enhancer": True},
        }

    @pytest.fixture
    def strict_locality(self):
        return False


class TestFreeCGAllegro(EnergyModelTestsMixin):
    @pytest.fixture(scope="class")
    @classmethod
    def config(cls):
        return {
            "_target_": "freecg_plugin.adapters.nequip_models.FreeCGAllegroModel",
            **TYPES,
            "radial_chemical_embed": {"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 8},
            "radial_chemical_embed_dim": 16,
            "num_layers": 2,
            "num_scalar_features": 16,
            "num_tensor_features": 8,
            "allegro_mlp_hidden_layers_width": 16,
            "scalar_embed_mlp_hidden_layers_width": 16,
            "readout_mlp_hidden_layers_width": 8,
            "freecg": {"groups": 2},
        }

    @pytest.fixture
    def strict_locality(self):
        return True
