"""The built wheel works on its own: installed into a clean virtual environment (its
dependencies taken from the project's environment, never downloaded), it trains the main job's
config from an empty folder on data fetched from a local HTTP server."""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"


def run(command, **kwargs):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_wheel_installs_into_a_clean_venv_and_trains_from_an_empty_folder(tmp_path, serve_folder):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "--quiet", "-w", dist])
    (wheel,) = dist.glob("freecg_plugin-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "freecg_plugin/configs/train/small.yaml" in names and "freecg_plugin/data/registry.yaml" in names
    assert "freecg_plugin/nn/_group_cg_cpu.cpp" in names and "freecg_plugin/adapters/pyg_visnet.py" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/")) or n.endswith(".npz")]
    # the package list of pyproject.toml is the one list: every package folder of the tree is in the wheel
    folders = ["freecg_plugin/adapters"] + [str(p.parent.relative_to(ROOT)) for p in (ROOT / "freecg_plugin").rglob("__init__.py")]
    missing = sorted(f for f in folders if f"{f}/__init__.py" not in names and "__pycache__" not in f)
    assert not missing, f"package folders missing from the wheel (pyproject.toml [tool.setuptools] packages): {missing}"
    assert "freecg_plugin/configs/md/nve.yaml" in names and "freecg_plugin/cli/__main__.py" in names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # the project's environment supplies the dependencies (a path line: its own .pth hooks, such as
    # the editable install of this checkout, are not run)
    (site / "project_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel])

    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FREECG_DATA", "PYTHON"))}
    env.update(FREECG_DATA=str(tmp_path / "cache"), FREECG_DATA_MIRROR=serve_folder(DATA))
    where = run(
        [python, "-c", "import freecg_plugin, freecg_plugin.data.registry as r; print(freecg_plugin.__file__); print(r.shipped_root())"],
        cwd=work,
        env=env,
    )
    module, shipped = where.stdout.split()
    assert module.startswith(str(site)) and shipped == "None"

    freecg = venv / "bin" / "freecg"
    missing = subprocess.run([freecg, "train", "--config", "small", "--max-epochs", "1"], capture_output=True, text=True, cwd=work, env=env)
    assert missing.returncode == 2 and "run: freecg data fetch rmd17/aspirin --split 01" in missing.stderr
    run([freecg, "data", "fetch", "rmd17/aspirin", "--split", "1"], cwd=work, env=env)
    trained = run([freecg, "train", "--config", "small", "--max-epochs", "1"], cwd=work, env=env)
    print(trained.stdout[-1500:])
    metrics = json.loads((work / "runs" / "small" / "test_metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["forces_mae"] > 0
    assert str(tmp_path / "cache" / "rmd17" / "rmd17_aspirin_test_01.npz") in trained.stdout
    assert (work / "runs" / "small" / "force_parity.png").stat().st_size > 0
