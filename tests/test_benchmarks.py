"""Every benchmark script runs, on its smallest setting, to its machine-readable last lines, so
that none can rot (what they measure is in benchmarks/RESULTS.md, never asserted here)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.tiny import PAINN, train_tiny

pytest.importorskip("lightning")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def bench(script: str, *args, cwd=None) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900)
    assert done.returncode == 0, f"{script}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_benchmark_script_has_a_smoke_test():
    tested = {"group_cg.py", "host_step.py", "profile_freecg.py", "gpu_visnet_step.py", "water_scale.py", "train_throughput.py"}
    tested |= {"md_speed.py", "md_batched.py", "compare_molecules.py", "variants.py", "engines.py", "md_long_run.py", "reproducibility.py"}
    tested |= {"keep_curve_records.py"}  # in tests/test_curves.py, on a finished curve plan
    assert {p.name for p in BENCHMARKS.glob("*.py")} - {"common.py"} == tested  # common.py: what the scripts share


def test_layer_and_host_benchmarks_run_on_their_smallest_setting(tmp_path):
    out = bench("group_cg.py", "--groups", 2, "--edges-per-group", 2, "--repeats", 1)
    assert "speedup N=168:" in out and "gflops matmul:" in out
    out = bench("host_step.py", "--hosts", "painn", "--batch", 1, "--repeats", 1)
    assert "cost painn train=" in out
    out = bench("variants.py", "--hosts", "painn", "--batch", 1, "--repeats", 1)
    assert "cost PaiNN_last,_per-channel_enhancer train=" in out
    out = bench("profile_freecg.py", "--hosts", "painn", "--batch", 1, "--repeats", 1, "--top", 2)
    assert "painn" in out
    out = bench("gpu_visnet_step.py", "--device", "cpu", "--preset", "quick", "--batch", 1, "--repeats", 1)
    assert "gpu freecg_e3nn train_ms=" in out
    out = bench("water_scale.py", "--hosts", "painn", "--replicas", 1, "--repeats", 1, "--png", tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 0


def test_training_benchmarks_run_on_their_smallest_setting(tmp_path):
    out = bench("train_throughput.py", "--hosts", "painn", "--epochs", 1, "--rounds", 2)
    assert "throughput painn bare cached=" in out and "throughput painn freecg cached=" in out
    plan = {
        "data": {"n_train": 8, "n_val": 4, "n_test": 6},
        "optim": {"lr": 1e-3, "batch_size": 4, "max_epochs": 1, "warmup_steps": 2},
        "cutoff": 4.0,
        "seeds": [1],
        "budgets": ["epochs"],
        "hosts": [PAINN],
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    bench("compare_molecules.py", "--preset", tmp_path / "plan.yaml", "--output", tmp_path / "molecules", "--molecules", "ethanol")
    assert (tmp_path / "molecules" / "molecules.md").stat().st_size > 0
    tiny = [
        "optim.max_epochs=1",
        "data.n_train=8",
        "data.n_val=4",
        "data.n_test=4",
        "model.args.hidden_channels=8",
        "model.args.num_layers=1",
    ]
    out = bench("reproducibility.py", "--output", tmp_path / "repro", *tiny)
    assert "run twice:" in out and (tmp_path / "repro" / "reproducibility.json").is_file()


def test_md_benchmarks_run_on_their_smallest_setting(tmp_path):
    checkpoints = [train_tiny(tmp_path / "host", freecg=None), train_tiny(tmp_path / "freecg")]
    out = bench("md_speed.py", "--system", "ethanol", *checkpoints, "--steps", 2, "--rounds", 1)
    assert "md_cost ethanol" in out
    out = bench("md_long_run.py", checkpoints[1], "--output", tmp_path / "long", "--steps", 400, "--every", 0.2)
    assert "400 steps, float32" in out and (tmp_path / "long" / "md_long_run.png").stat().st_size > 0
    out = bench("md_batched.py", *checkpoints, "--replicas", "1,2", "--steps", 2, "--rounds", 1)
    assert "batched painn replicas=2 speedup=" in out
    pytest.importorskip("metatomic.torch")
    out = bench("engines.py", checkpoints[1], "--steps", 2, "--rounds", 1)
    assert "engine ipi_metatomic ms_per_step=" in out and "engine freecg_md ms_per_step=" in out
