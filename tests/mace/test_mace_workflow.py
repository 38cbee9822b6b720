"""MACE through the project's commands, in MACE's environment: ``freecg train`` trains MACE +
FreeCG, its model file is read back by the ASE calculator with the same energies and forces, and
``freecg compare`` runs MACE against MACE + FreeCG."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

FREECG = Path(sys.executable).with_name("freecg")
MACE = {"host": "mace", "args": {"channels": 8, "max_L": 1, "max_ell": 2, "correlation": 2, "num_interactions": 2, "radial_MLP": [16]}}


def test_train_export_and_calculator(tmp_path):

    from freecg_plugin.integrations import FreeCGCalculator

    config = {
        "data": {"dataset": "rmd17/ethanol", "n_train": 16, "n_val": 4, "n_test": 8},
        "model": {**MACE, "cutoff": 4.0, "freecg": {"groups": 2}},
        "optim": {"lr": 2e-3, "batch_size": 4, "max_epochs": 3, "warmup_steps": 2},
        "output": str(tmp_path / "run"),
        "accelerator": "cpu",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([str(FREECG), "train", "--config", str(tmp_path / "config.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics["epochs"] == 3 and np.isfinite(metrics["forces_mae"])
    exported = subprocess.run(
        [str(FREECG), "export", str(tmp_path / "run" / "checkpoints" / "best.ckpt"), "--output", str(tmp_path / "mace.freecg")],
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    from freecg_plugin.md import load_structure

    atoms = load_structure("rmd17/ethanol", 3, None)
    results = []
    for source in (tmp_path / "run" / "checkpoints" / "best.ckpt", tmp_path / "mace.freecg"):
        atoms.calc = FreeCGCalculator(str(source))
        results.append((atoms.get_potential_energy(), atoms.get_forces().copy()))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-9) and np.abs(results[0][1] - results[1][1]).max() < 1e-9


def test_compare_runs_mace_against_mace_with_freecg(tmp_path):
    plan = {
        "data": {"dataset": "rmd17/ethanol", "n_train": 8, "n_val": 4, "n_test": 6},
        "optim": {"lr": 1e-3, "batch_size": 4, "warmup_steps": 2, "max_epochs": 2},
        "cutoff": 4.0,
        "seeds": [3],
        "budgets": ["epochs", "parameters"],
        "hosts": [{**MACE, "freecg": {"groups": 2}}],
        "output": str(tmp_path / "out"),
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    done = subprocess.run([str(FREECG), "compare", "--config", str(tmp_path / "plan.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "comparison.json").read_text())
    variants = {(row["host"], row["variant"], row["budget"]) for row in report["rows"]}
    assert len(variants) == 3 and {v[0] for v in variants} == {"mace"}, variants
    assert {v["budget"] for v in report["verdicts"]} == {"epochs", "parameters"}
