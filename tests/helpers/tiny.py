"""Tiny models and plans the tests train in seconds: a PaiNN (+ FreeCG) host entry, a trained
potential, and a ``freecg compare`` plan on rMD17 ethanol."""

from pathlib import Path

PAINN = {"host": "painn", "args": {"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6}, "freecg": {"groups": 2}}
"""A PaiNN + FreeCG of a few hundred parameters (``freecg: null`` for the bare host)."""
SO3NET = {"host": "so3net", "args": {"n_atom_basis": 8, "n_interactions": 1, "lmax": 1, "n_rbf": 6}, "freecg": {"groups": 2}}
"""An SO3net + FreeCG of the same size."""


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
