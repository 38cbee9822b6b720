"""Time-to-accuracy curves: the training clock leaves out stopped time, the weights are saved at
the planned clock times and evaluated afterwards, and ``freecg compare`` with the curve budget
reports curves, cross-over, times to fixed errors and flatness for all three arms."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.tiny import tiny_plan

pytest.importorskip("lightning")

from freecg_plugin.compare import load_compare_config, plan  # noqa: E402
from freecg_plugin.compare.curves import crossover, flattened, time_to  # noqa: E402
from freecg_plugin.compare.statistics import mean_std  # noqa: E402
from freecg_plugin.training.snapshots import log_spaced_times  # noqa: E402


def stats(*rows):
    return [mean_std(list(r)) for r in rows]


def test_crossover_is_the_first_time_from_which_freecg_stays_clearly_ahead():
    times = [1, 2, 4, 8]
    host = stats((5.0, 5.1, 4.9), (4.0, 4.1, 3.9), (3.0, 3.1, 2.9), (2.5, 2.6, 2.4))
    ahead_late = stats((6.0, 6.1, 5.9), (3.0, 3.1, 2.9), (2.0, 2.1, 1.9), (1.5, 1.6, 1.4))
    assert crossover(times, ahead_late, host) == 2
    falls_back = stats((4.0, 4.1, 3.9), (3.0, 3.1, 2.9), (3.0, 3.1, 2.9), (2.5, 2.6, 2.4))
    assert crossover(times, falls_back, host) is None  # ahead early, level at the end
    noisy = stats((1.0, 9.0, 5.0), (1.0, 9.0, 4.0), (1.0, 6.0, 2.0), (0.5, 5.0, 1.0))
    assert crossover(times, noisy, host) is None  # lower means, but within two standard errors


def test_time_to_a_target_and_flatness():
    times = [1, 2, 4, 8]
    curve = stats((5.0, 5.0), (3.0, 3.0), (2.0, 2.0), (1.95, 1.95))
    assert time_to(times, curve, 3.0) == 2 and time_to(times, curve, 1.0) is None
    assert flattened(times, curve) is True and flattened(times[:3], curve[:3]) is False and flattened([1], curve[:1]) is None
    assert log_spaced_times(15, 100) == [15, 30, 60, 100] and log_spaced_times(10, 40) == [10, 20, 40]
    with pytest.raises(ValueError):
        log_spaced_times(0, 10)


def test_curve_arms_and_metric_are_checked_and_planned(tmp_path):
    def runs(**curve):
        settings = tiny_plan(tmp_path / "out", seeds=[1], budgets=["curve"], curve={"horizon_s": 4, "first_s": 1, **curve})
        (tmp_path / "plan.yaml").write_text(yaml.safe_dump(settings))
        return plan(load_compare_config(tmp_path / "plan.yaml"))

    assert sorted(r.roles[0][1] for r in runs(arms=["host + FreeCG", "host"], metric="val_forces_mae")) == ["host", "host + FreeCG"]
    with pytest.raises(ValueError, match="curve arms must include 'host \\+ FreeCG'"):
        runs(arms=["host"])
    with pytest.raises(ValueError, match="curve arms must include"):
        runs(arms=["host + FreeCG", "host, wider"])
    with pytest.raises(ValueError, match="curve metric must be one of"):
        runs(metric="test_energy_mae")


CLOCK = """
import json, time
from freecg_plugin.training.clock import PausableClock
clock = PausableClock()
clock.start()
start = time.monotonic()
print("ready", flush=True)
while time.monotonic() - start < 4.0:
    sum(i * i for i in range(20000))
clock.stop()
print(json.dumps({"wall": time.monotonic() - start, "clock": clock.seconds, "cpu": clock.cpu_seconds}))
"""


@pytest.mark.slow
def test_the_clock_leaves_out_the_time_the_process_was_stopped():
    child = subprocess.Popen([sys.executable, "-c", CLOCK], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.8)
    child.send_signal(signal.SIGSTOP)
    time.sleep(2.0)
    child.send_signal(signal.SIGCONT)
    result = json.loads(child.communicate(timeout=60)[0].strip().splitlines()[-1])
    assert result["wall"] >= 4.0
    assert result["clock"] == pytest.approx(result["wall"] - 2.0, abs=0.4)
    assert 0 < result["cpu"] <= result["clock"] * 1.1 + 0.2  # a busy single thread: CPU time close to the clock


@pytest.mark.slow
def test_curve_budget_end_to_end(tmp_path):
    output = tmp_path / "ethanol"  # where benchmarks/compare_molecules.py looks for the ethanol plan
    settings = tiny_plan(output, seeds=[1, 2], budgets=["curve"], curve={"horizon_s": 4, "first_s": 1})
    settings["optim"]["ema_decay"] = 0.9
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(settings))
    runs = plan(load_compare_config(tmp_path / "plan.yaml"))
    assert sorted(r.roles[0][1] for r in runs) == sorted(["host + FreeCG", "host", "host, equal parameters"] * 2)
    assert all(r.config["optim"]["curve_points_s"] == [1.0, 2.0, 4.0] and r.config["optim"]["max_time_s"] == 4 for r in runs)
    done = subprocess.run(
        [sys.executable, "-m", "freecg_plugin.cli", "compare", "--config", str(tmp_path / "plan.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for run in runs:
        record = json.loads((output / run.folder / "test_metrics.json").read_text())
        assert 4.0 <= record["train_seconds"] < 8.0 and record["train_cpu_seconds"] > 0  # stopped by the clock at the horizon
        points = json.loads((output / run.folder / "curve.json").read_text())["points"]
        assert [p["time_s"] for p in points][:3] == [1.0, 2.0, 4.0]
        assert all(p["seconds"] >= p["time_s"] and p["test_forces_mae"] > 0 and p["val_forces_mae"] > 0 for p in points)
        assert [p["step"] for p in points] == sorted(p["step"] for p in points)
    result = json.loads((output / "curves.json").read_text())
    (summary,) = result["summaries"]
    assert set(summary["arms"]) == {"host + FreeCG", "host", "host, equal parameters"}
    assert all(arm["seeds"] == 2 for arm in summary["arms"].values())
    assert summary["crossover_s"] in (None, 1.0, 2.0, 4.0) and set(summary["time_to"]) == {"1.5x", "1.2x", "1x"}
    assert set(summary["verdicts"]) == {"host", "host, equal parameters"}
    assert (output / "curves.png").stat().st_size > 0 and "cross-over" in (output / "curves.md").read_text()
    # the table over molecules: one row per host and molecule, all three arms at the horizon
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_molecules.py"
    command = [sys.executable, str(script), "--preset", str(tmp_path / "plan.yaml"), "--molecules", "ethanol", "--output", str(tmp_path)]
    done = subprocess.run([*command, "--report-only"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [line for line in (tmp_path / "molecules.md").read_text().splitlines() if line.startswith("| painn | ethanol |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 10 and all(cell.endswith("(2)") for cell in cells[2:5]), cells  # three arms, two seeds each
    assert cells[7] == "none" or float(cells[7]) in (1.0, 2.0, 4.0)
    assert (tmp_path / "molecules_curves.png").stat().st_size > 0
