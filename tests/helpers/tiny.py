"""Tiny models and plans the tests train in seconds: a PaiNN (+ FreeCG) host entry, a trained
potential, and a ``freecg compare`` plan on rMD17 ethanol."""

from pathlib import Path

PAINN = {"host": "painn", "args": {"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6}, "freecg": {"groups": 2}}
"""A PaiNN + FreeCG of a few hundred parameters (``freecg: null`` for the bare host)."""
SO3NET = {"host": "so3net", "args": {"n_atom_basis": 8, "n_interactions": 1, "lmax": 1, "n_rbf": 6}, "freecg": {"groups": 2}}
"""An SO3net + FreeCG of the same size."""

HOSTS_TINY = {
    "visnet": ({"lmax": 2, "num_heads": 2, "num_layers": 2, "hidden_channels": 8, "num_rbf": 4}, {"groups": 2}),
    "painn": ({"n_atom_basis": 8, "n_interactions": 2, "n_rbf": 6}, {"groups": 2}),
    "so3net": ({"n_atom_basis": 8, "n_interactions": 2, "lmax": 2, "n_rbf": 4}, {"groups": 2}),
    "nequip": (
        {"num_layers": 3, "l_max": 1, "parity": False, "num_features": 8, "radial_mlp_width": 8, "model_dtype": "float64"},
        {"edges_per_group": 4},
    ),
    "allegro": (
        {
            "l_max": 1,
            "parity": False,
            "radial_chemical_embed": {"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 4},
            "radial_chemical_embed_dim": 4,
            "num_layers": 2,
            "num_scalar_features": 8,
            "num_tensor_features": 8,
            "allegro_mlp_hidden_layers_width": 8,
            "scalar_embed_mlp_hidden_layers_width": 8,
            "readout_mlp_hidden_layers_width": 4,
            "model_dtype": "float64",
        },
        {"edges_per_group": 4},
    ),
}
"""Every host of the main environment at a tiny size: ``host -> (host args, FreeCG settings)``,
float64 where the host chooses its dtype (NequIP, Allegro). MACE lives in its own environment
(``.venv-mace``) and its own tests (``tests/mace``)."""

MAIN_HOSTS = sorted(HOSTS_TINY)
"""The hosts of the main environment (every host but MACE)."""


def train_tiny(
    output: Path, dataset: str = "rmd17/ethanol", frames: int = 8, epochs: int = 1, freecg=PAINN["freecg"], host: dict = PAINN, **optim
) -> Path:
    """Train a tiny potential (``host``: :data:`PAINN` or :data:`SO3NET`, with ``freecg``) on
    ``frames`` frames of ``dataset``; returns its best checkpoint."""
    from freecg_plugin.configs import TrainConfig
    from freecg_plugin.training import train

    config = TrainConfig.from_dict({
        "data": {"dataset": dataset, "n_train": frames, "n_val": 4, "n_test": 4},
        "model": {"host": host["host"], "args": host["args"], "cutoff": 4.0, "freecg": freecg},
        "optim": {"batch_size": 4, "max_epochs": epochs, "warmup_steps": 1, **optim}, "output": str(output), "accelerator": "cpu",
    })  # fmt: skip
    train(config)
    return Path(output) / "checkpoints" / "best.ckpt"


def tiny_plan(output: Path, **changes) -> dict:
    """A ``freecg compare`` plan of one tiny PaiNN on 8 ethanol frames, with ``changes``."""
    plan = {
        "data": {"dataset": "rmd17/ethanol", "n_train": 8, "n_val": 4, "n_test": 6},
        "optim": {"lr": 1e-3, "batch_size": 4, "warmup_steps": 2},
        "cutoff": 4.0,
        "seeds": [3],
        "hosts": [PAINN],
        "output": str(output),
    }
    return {**plan, **changes}
