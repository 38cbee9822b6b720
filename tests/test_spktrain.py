"""The real ``spktrain`` CLI with the FreeCG representations, 1 epoch on a tiny rMD17 subset."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("schnetpack")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "rmd17"
EXAMPLE = ROOT / "examples" / "schnetpack"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("spktrain")
    shutil.copytree(EXAMPLE / "configs", work / "configs")
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "convert_rmd17.py"),
            str(DATA),
            "aspirin",
            "01",
            str(work / "data" / "aspirin.db"),
            "--train",
            "12",
            "--val",
            "6",
            "--test",
            "6",
        ],
        check=True,
    )
    return work


@pytest.mark.parametrize("representation", ["painn_freecg", "so3net_freecg"])
def test_spktrain_runs_to_its_test_stage(representation, workdir):
    spktrain = Path(sys.executable).with_name("spktrain")
    # SchNetPack pickles the model in checkpoints; Hydra finds ./configs through $PWD
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PWD": str(workdir)}
    result = subprocess.run(
        [
            str(spktrain),
            "experiment=aspirin",
            f"model/representation={representation}",
            "trainer.max_epochs=1",
            "data.num_train=12",
            "data.num_val=6",
            "data.num_test=6",
            "model.representation.n_atom_basis=8",
            "model.representation.n_interactions=2",
            f"run.id={representation}",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = workdir / "runs" / representation
    assert (run / "best_model").is_file()
    rows = list(csv.DictReader(open(next(run.glob("csv/version_*/metrics.csv")))))
    test = [r for r in rows if r["test_forces_mae"]]
    assert len(test) == 1 and float(test[0]["test_forces_mae"]) > 0
    target = "PaiNNFreeCG" if representation == "painn_freecg" else "SO3netFreeCG"
    assert f"freecg_plugin.adapters.schnetpack.{target}" in (run / "config.yaml").read_text()


@pytest.fixture(scope="module")
def qm9_db(workdir):
    database = workdir / "data" / "qm9.db"
    subset = ROOT / "examples" / "data" / "qm9" / "qm9_subset10k_seed0.npz"
    subprocess.run([sys.executable, str(EXAMPLE / "convert_qm9.py"), str(subset), str(database), "--limit", "40"], check=True)
    return database


@pytest.mark.parametrize("experiment, metric", [("qm9_atomwise", "test_energy_U0_mae"), ("qm9_dipole", "test_dipole_moment_mae")])
def test_spktrain_qm9_experiments_run_with_painn_freecg(experiment, metric, workdir, qm9_db):
    from schnetpack.data import ASEAtomsData

    stored = ASEAtomsData(str(qm9_db))
    assert len(stored) == 40 and stored.metadata["atomrefs"]["energy_U0"][6] == pytest.approx(-37.846772)
    spktrain = Path(sys.executable).with_name("spktrain")
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PWD": str(workdir)}
    result = subprocess.run(
        [
            str(spktrain), f"experiment={experiment}", "model/representation=painn_freecg", "logger=csv", f"data.datapath={qm9_db}",
            f"+data.split_file={workdir / 'data' / 'qm9_split.npz'}", "data.num_train=24", "data.num_val=8", "data.num_test=8",
            "data.batch_size=8", "data.num_workers=0", "data.num_val_workers=0", "data.num_test_workers=0", "trainer.max_epochs=1",
            "model.representation.n_atom_basis=8", "model.representation.n_interactions=2", f"run.id={experiment}",
        ],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = workdir / "runs" / experiment
    rows = list(csv.DictReader(open(next(run.glob("csv/version_*/metrics.csv")))))
    test = [r for r in rows if r.get(metric)]
    assert len(test) == 1 and float(test[0][metric]) > 0
    assert "freecg_plugin.adapters.schnetpack.PaiNNFreeCG" in (run / "config.yaml").read_text()
