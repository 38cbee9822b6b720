"""A resumed training's record counts every epoch and every second of training across its
invocations, for both tasks; ``freecg compare`` gives the bare host the equal-time budget of
host + FreeCG's whole training, also when that run was interrupted and resumed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers.tiny import PAINN, tiny_plan

pytest.importorskip("lightning")

from freecg_plugin.compare import load_compare_config, plan, train_in_subprocess  # noqa: E402
from freecg_plugin.configs import TrainConfig  # noqa: E402
from freecg_plugin.training import train  # noqa: E402


def clock_of(checkpoint: Path) -> float:
    """The training seconds a checkpoint's clock holds."""
    return float(torch.load(checkpoint, map_location="cpu", weights_only=True)["callbacks"]["TrainingClock"]["seconds"])


@pytest.mark.slow
def test_a_resumed_property_training_counts_both_invocations(tmp_path):
    config = TrainConfig.from_dict({
        "task": "properties", "targets": ["mu", "gap"],
        "data": {"dataset": "qm9/subset10k", "n_train": 32, "n_val": 8, "n_test": 8},
        "model": {**{k: v for k, v in PAINN.items()}, "cutoff": 4.0},
        "optim": {"lr": 1e-3, "batch_size": 16, "max_epochs": 2, "warmup_steps": 2}, "output": str(tmp_path), "accelerator": "cpu",
    })  # fmt: skip
    first = train(config, max_epochs=1)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert first["epochs"] == 1 and clock_of(last) == pytest.approx(first["train_seconds"])
    second = train(config, resume=str(last))
    assert second["epochs"] == 2
    assert second["train_seconds"] > first["train_seconds"] and clock_of(last) == pytest.approx(second["train_seconds"])
    assert second["seconds_per_epoch"] == pytest.approx(second["train_seconds"] / 2)


@pytest.mark.slow
def test_equal_time_budget_is_the_whole_training_of_an_interrupted_freecg_run(tmp_path):
    output = tmp_path / "out"
    settings = tiny_plan(output, budgets=["time"])
    settings["optim"]["max_epochs"] = 4
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(settings))
    runs = plan(load_compare_config(tmp_path / "plan.yaml"))
    (freecg,) = [r for r in runs if r.roles[0][1] == "host + FreeCG"]
    (timed,) = [r for r in runs if r.time_of == freecg.key]
    folder = output / freecg.folder
    # host + FreeCG interrupted after two of its four epochs: a last checkpoint and no record
    partial = dict(freecg.config, optim=dict(freecg.config["optim"], max_epochs=2))
    train_in_subprocess(partial, folder, "partial")
    (folder / "test_metrics.json").unlink()
    before = clock_of(folder / "checkpoints" / "last.ckpt")
    assert before > 0

    done = subprocess.run(
        [sys.executable, "-m", "freecg_plugin.cli", "compare", "--config", str(tmp_path / "plan.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((folder / "test_metrics.json").read_text())
    assert record["epochs"] == 4 and record["train_seconds"] > before
    assert record["seconds_per_epoch"] == pytest.approx(record["train_seconds"] / 4)
    assert (folder / "train.log").read_text().count("all invocations together") == 2  # it resumed, not restarted
    budget = yaml.safe_load((output / timed.folder / "config.yaml").read_text())["optim"]["max_time_s"]
    assert budget == pytest.approx(record["train_seconds"])
