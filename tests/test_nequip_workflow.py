"""The nequip workflow with FreeCG models: the real ``nequip-train``, ``nequip-package`` and
``nequip-compile`` CLIs on a tiny rMD17 aspirin subset, for NequIP + FreeCG and Allegro + FreeCG.

* training runs to its test stage with our example config (``examples/nequip/aspirin.yaml``);
* the packaged ``.nequip.zip`` gives the checkpoint's energies in a process where freecg-plugin is
  NOT importable (site-packages without our distribution, ``python -S``): the package carries it;
* the AOTInductor-compiled model (``--target ase``) gives the same energies through nequip's ASE
  calculator, and ``freecg md`` simulates it.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
BIN = Path(sys.executable).parent
ENERGIES = Path(__file__).parent / "helpers" / "nequip_energies.py"
TINY = ["max_epochs=1", "num_train=20", "num_val=10", "num_test=10"]
SMALL = {
    "nequip_freecg": ["training_module.model.num_features=8", "training_module.model.num_layers=2"],
    "allegro_freecg": ["training_module.model.num_tensor_features=8", "training_module.model.num_scalar_features=16"],
}


def run(command, cwd, timeout=900):
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    source = DATA / "rmd17" / "rmd17_aspirin_test_01.npz"
    if not source.is_file():
        pytest.skip(f"reference data not found at {source.parent}")
    data = np.load(source)
    path = tmp_path_factory.mktemp("frames") / "aspirin3.xyz"
    ase.io.write(path, [ase.Atoms(numbers=data["nuclear_charges"], positions=data["coords"][i]) for i in range(3)])
    return path


@pytest.fixture(scope="module", params=["nequip_freecg", "allegro_freecg"])
def trained(request, frames, tmp_path_factory):
    """One nequip-train run (1 epoch on 20 frames) per FreeCG model; returns its output folder."""
    out = tmp_path_factory.mktemp(request.param)
    run(
        [
            BIN / "nequip-train",
            "-cp",
            ROOT / "examples" / "nequip",
            "-cn",
            "aspirin",
            f"model={request.param}",
            f"data_dir={DATA}",
            f"hydra.run.dir={out}",
            *TINY,
            *SMALL[request.param],
        ],
        cwd=out,
    )
    return request.param, out


def energies(model, frames, env=None, python=(sys.executable,)):
    result = subprocess.run(
        [*python, str(ENERGIES), str(model), str(frames)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(model).parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def eager(trained, frames):
    """Energies of the trained checkpoint, in eager mode, with freecg-plugin importable."""
    reference = energies(trained[1] / "best.ckpt", frames)
    assert reference["freecg_plugin_importable"]
    return reference["energies"]


def test_nequip_train_reaches_its_test_stage(trained):
    name, out = trained
    assert (out / "best.ckpt").is_file() and (out / "last.ckpt").is_file()
    rows = list(csv.DictReader(open(next(out.glob("log/version_*/metrics.csv")))))
    tested = [r for r in rows if r.get("test0_epoch/forces_mae")]
    assert len(tested) == 1 and np.isfinite(float(tested[0]["test0_epoch/forces_mae"]))
    target = {"nequip_freecg": "FreeCGNequIPGNNModel", "allegro_freecg": "FreeCGAllegroModel"}[name]
    assert f"freecg_plugin.adapters.nequip_models.{target}" in (out / ".hydra" / "config.yaml").read_text()


def test_package_runs_where_freecg_plugin_is_not_installed(trained, frames, eager, tmp_path):
    name, out = trained
    package = out / f"{name}.nequip.zip"
    run([BIN / "nequip-package", "build", out / "best.ckpt", package], cwd=out)
    # a site-packages without our distribution (module, metadata and entry point), no .pth files
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    clean = tmp_path / "site-packages"
    clean.mkdir()
    for entry in site.iterdir():
        if "freecg" not in entry.name and not entry.name.startswith("__editable__"):
            (clean / entry.name).symlink_to(entry.resolve())
    env = {**os.environ, "PYTHONPATH": str(clean)}
    packaged = energies(package, frames, env=env, python=(sys.executable, "-S"))
    assert not packaged["freecg_plugin_importable"]
    # float32 model; the archive holds no kernel source, so it runs the torch contraction where the
    # eager checkpoint ran the compiled kernel: the same numbers up to float32 rounding (kcal/mol)
    np.testing.assert_allclose(packaged["energies"], eager, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def compiled(trained):
    """The trained model compiled by AOTInductor for nequip's ASE calculator."""
    name, out = trained
    path = out / f"{name}.nequip.pt2"
    run([BIN / "nequip-compile", out / "best.ckpt", path, "--mode", "aotinductor", "--device", "cpu", "--target", "ase"], cwd=out)
    return path


def test_aotinductor_compiled_model_matches_eager(compiled, frames, eager):
    np.testing.assert_allclose(energies(compiled, frames)["energies"], eager, rtol=1e-6)


def test_freecg_md_runs_a_compiled_nequip_model(compiled, frames, eager, tmp_path):
    # 0.1 fs: these one-epoch models have rough forces
    md = [BIN / "freecg", "md", "--checkpoint", compiled, "--ensemble", "nve", "--timestep", "0.1", "--time", "0.004", "--quiet"]
    # a nequip model knows neither its training data nor its energy unit: one-line errors, no run
    for given, message in ((["--structure", frames], "give --energy-unit"), (["--energy-unit", "kcal/mol"], "give --structure")):
        result = subprocess.run([str(c) for c in md + given + ["--output", tmp_path / message]], capture_output=True, text=True)
        assert result.returncode != 0 and message in result.stderr.strip().splitlines()[-1]
        assert not (tmp_path / message / "log.csv").exists()
    out = tmp_path / "nve"
    run(md + ["--structure", frames, "--energy-unit", "kcal/mol", "--output", out], cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 40
    log = list(csv.DictReader(open(out / "log.csv")))
    # the first row is frame 0 under the model, converted from kcal/mol to eV
    assert float(log[0]["potential_eV"]) == pytest.approx(eager[0] * 0.0433641043, rel=1e-6)
    total = np.array([float(r["total_eV"]) for r in log])
    kinetic = np.array([float(r["kinetic_eV"]) for r in log])
    assert kinetic.max() > 0.1  # the atoms move (300 K on 21 atoms is about 0.8 eV)
    assert np.abs(total - total[0]).max() < 1e-3 * kinetic.mean()  # velocity Verlet conserves energy (measured 2e-5 eV)


@pytest.mark.parametrize("model", ["nequip_freecg", "allegro_freecg"])
def test_periodic_water_trains_through_our_extxyz_converter(model, tmp_path):
    source = DATA / "water" / "water64_deepmd_400.npz"
    if not source.is_file():
        pytest.skip(f"reference data not found at {source.parent}")
    xyz = tmp_path / "water64.xyz"
    run([sys.executable, ROOT / "examples" / "nequip" / "npz_to_extxyz.py", source, xyz], cwd=tmp_path)
    frames = ase.io.read(xyz, index=":")
    assert len(frames) == 400 and frames[0].pbc.all() and frames[0].get_volume() > 1900
    out = tmp_path / "run"
    run(
        [
            BIN / "nequip-train",
            "-cp",
            ROOT / "examples" / "nequip",
            "-cn",
            "water",
            f"model={model}",
            f"water_xyz={xyz}",
            f"hydra.run.dir={out}",
            "max_epochs=1",
            "num_train=4",
            "num_val=2",
            "test_start=6",
            "num_test=2",
            *SMALL[model],
        ],
        cwd=tmp_path,
    )
    rows = list(csv.DictReader(open(next(out.glob("log/version_*/metrics.csv")))))
    assert any(r.get("test0_epoch/forces_mae") and np.isfinite(float(r["test0_epoch/forces_mae"])) for r in rows)


def test_converter_refuses_a_malformed_file_and_keeps_the_old_output(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, Z=np.ones(3), R=np.zeros((2, 3, 3)))
    out = tmp_path / "kept.xyz"
    out.write_text("previous content\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "nequip" / "npz_to_extxyz.py"), str(bad), str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "bad.npz" in result.stderr
    assert out.read_text() == "previous content\n"
