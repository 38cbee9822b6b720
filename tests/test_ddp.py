"""Multi-process training: Lightning DDP on the CPU (gloo, 2 processes) against one process with
the combined batch, through the trainer's own task and data loader (``tests/helpers/ddp_steps.py``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parent / "helpers" / "ddp_steps.py"


def _env() -> dict:
    """One thread per process; no rank inherited from a launcher around pytest."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("LOCAL_RANK", None)
    return env


def _run(out: Path, devices: int, batch: int, steps: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--devices", str(devices), "--batch", str(batch), "--steps", str(steps)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=True)


def test_two_processes_train_as_one_with_the_combined_batch(tmp_path):
    steps = 4  # two epochs of 16 frames: the learning-rate scheduler and validation run in between
    one = _run(tmp_path / "one.pt", devices=1, batch=4, steps=steps)
    two = _run(tmp_path / "two.pt", devices=2, batch=4, steps=steps)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert len(one["losses"]) == len(two["losses"]) == steps
    assert torch.allclose(torch.tensor(two["losses"]), torch.tensor(one["losses"]), rtol=1e-4, atol=0)
    assert all(torch.equal(one["initial"][k], two["initial"][k]) for k in one["initial"])
    moved = max(float((one["state"][k] - one["initial"][k]).abs().max()) for k in one["state"])
    apart = max(float((one["state"][k] - two["state"][k]).abs().max()) for k in one["state"])
    assert moved > 1e-4 and apart < 1e-3 * moved, (moved, apart)  # it trained, and both runs the same way


def test_freecg_train_runs_on_two_processes_and_reports_once(tmp_path):
    output = tmp_path / "ddp"
    overrides = ["accelerator=cpu", "devices=2", "strategy=ddp", "optim.max_epochs=1", "data.n_train=16", "data.n_val=4"]
    overrides += ["data.n_test=4", f"output={output}", "model.args.num_layers=1"]
    done = subprocess.run(
        [sys.executable, "-m", "freecg_plugin.cli", "train", "--config", "small", *overrides],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| energy |") == 1  # rank 0 alone tests and prints
    assert (output / "test_metrics.json").is_file() and (output / "checkpoints" / "last.ckpt").is_file()
