"""Time-to-accuracy curves: the training clock leaves out stopped time, the weights are saved at
the planned clock times and evaluated afterwards, and ``freecg compare`` with the curve budget
reports curves, cross-over, times to fixed errors and flatness for all three arms."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers.tiny import PAINN, tiny_plan

pytest.importorskip("lightning")

from freecg_plugin.checkpoint import load_trained_model  # noqa: E402
from freecg_plugin.compare import load_compare_config, plan  # noqa: E402
from freecg_plugin.compare.curves import crossover, crossover_text, curve_report, flattened, seed_rows, time_to  # noqa: E402
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


def test_a_host_entry_can_have_a_longer_horizon_than_the_plan(tmp_path):
    def config(hosts, **changes):
        settings = tiny_plan(tmp_path / "out", seeds=[1], hosts=hosts, **changes)
        (tmp_path / "plan.yaml").write_text(yaml.safe_dump(settings))
        return load_compare_config(tmp_path / "plan.yaml")

    curve = {"budgets": ["curve"], "curve": {"horizon_s": 4, "first_s": 1}}
    slow = {**PAINN, "label": "slow", "horizon_s": 10}
    times = {}
    for run in plan(config([PAINN, slow], **curve)):
        times.setdefault(run.roles[0][0], set()).add((run.config["optim"]["max_time_s"], tuple(run.config["optim"]["curve_points_s"])))
    assert times == {"painn": {(4.0, (1.0, 2.0, 4.0))}, "slow": {(10.0, (1.0, 2.0, 4.0, 8.0, 10.0))}}
    with pytest.raises(ValueError, match=r"hosts\[1\]: curve times: snapshot times need"):
        config([PAINN, {**PAINN, "horizon_s": 0.5}], **curve)
    with pytest.raises(ValueError, match="needs the curve budget"):
        config([slow], budgets=["epochs"])


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
    (row,) = [line for line in (tmp_path / "molecules.md").read_text().splitlines() if line.startswith("| painn | ethanol | 4 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 11 and cells[2] == "4" and all(cell.endswith("(2)") for cell in cells[3:6]), cells  # three arms, two seeds each
    assert cells[8] == "none within the horizon" or float(cells[8]) in (1.0, 2.0, 4.0)
    assert (tmp_path / "molecules_curves.png").stat().st_size > 0
    text = (tmp_path / "molecules.md").read_text()
    assert all(f"| painn | ethanol | {seed} | " in text for seed in ("1", "2", "paired"))  # each seed, then the paired changes
    # the records kept in the repository: what the report needs and the final models as safe files,
    # from which alone the same table is written again
    records = tmp_path / "records"
    keeper = script.with_name("keep_curve_records.py")
    done = subprocess.run(
        [sys.executable, str(keeper), "--runs", str(tmp_path), "--records", str(records), "--models", "painn"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for run in runs:
        kept = records / "ethanol" / run.folder
        assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "curve.json", "test_metrics.json"]
        model = load_trained_model(records / "ethanol" / "models" / f"{kept.name}.freecg").model.state_dict()
        trained = load_trained_model(output / run.folder / "checkpoints" / "last.ckpt").model.state_dict()
        assert model.keys() == trained.keys() and all(torch.equal(model[k], trained[k]) for k in model)
    command = [sys.executable, str(script), "--preset", str(tmp_path / "plan.yaml"), "--molecules", "ethanol", "--output", str(records)]
    done = subprocess.run([*command, "--report-only"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert row in (records / "molecules.md").read_text().splitlines()


def _finished(output: Path, key: str, config: dict, code: str = "abc") -> Path:
    """A run folder as a finished run leaves it (what :func:`shorter_run` reads)."""
    folder = output / "runs" / key
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    (folder / "config.yaml").write_text(yaml.safe_dump(dict(config, output=str(folder))))
    (folder / "test_metrics.json").write_text(json.dumps({"provenance": {"code": {"sources_sha256": code}}}))
    return folder


def _curve_config(horizon: float, first: float = 1.0, lr: float = 1e-3) -> dict:
    times = [t for t in (first, 2 * first, 4 * first, 8 * first) if t < horizon] + [horizon]
    return {"model": {"host": "painn"}, "optim": {"lr": lr, "max_time_s": horizon, "curve_points_s": times}}


def test_a_longer_curve_goes_on_from_the_longest_shorter_run_of_the_same_settings(tmp_path):
    from freecg_plugin.compare import Run
    from freecg_plugin.compare.extend import shorter_run

    run = Run("new", [["painn", "host"]], "curve", 1, _curve_config(8.0))
    assert shorter_run(tmp_path, run, "abc") is None  # nothing to go on from
    _finished(tmp_path, "two", _curve_config(2.0))
    four = _finished(tmp_path, "four", _curve_config(4.0))
    _finished(tmp_path, "other_lr", _curve_config(4.0, lr=2e-3))  # other settings
    _finished(tmp_path, "other_times", _curve_config(6.0, first=1.5))  # would leave 1, 2, 4 s unsaved
    _finished(tmp_path, "longer", _curve_config(16.0))  # not shorter
    assert shorter_run(tmp_path, run, "abc") == four
    assert shorter_run(tmp_path, run, "other code") is None  # made by other code: not without accept_stale
    assert shorter_run(tmp_path, run, "other code", accept_stale=True) == four
    assert shorter_run(tmp_path, Run("new", [["painn", "host"]], "epochs", 1, _curve_config(8.0)), "abc") is None


def _folder_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_plan_whose_horizon_grew_trains_only_the_extra_time(tmp_path):
    def curves(horizon: float) -> Path:
        settings = tiny_plan(tmp_path / "out", seeds=[1], budgets=["curve"], curve={"horizon_s": horizon, "first_s": 1})
        settings["curve"]["arms"] = ["host + FreeCG", "host"]
        path = tmp_path / f"plan_{horizon:g}.yaml"
        path.write_text(yaml.safe_dump(settings))
        done = subprocess.run([sys.executable, "-m", "freecg_plugin.cli", "compare", "--config", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return path, done.stdout

    short_plan, _ = curves(2)
    short = {run.key: run for run in plan(load_compare_config(short_plan))}
    before = {key: _folder_digest(tmp_path / "out" / run.folder) for key, run in short.items()}
    long_plan, out = curves(4)
    assert out.count("goes on from") == 2, out
    for run in plan(load_compare_config(long_plan)):
        folder = tmp_path / "out" / run.folder
        source = json.loads((folder / "continues.json").read_text())
        old = tmp_path / "out" / short[source["from"]].folder
        assert source["horizon_s"] == 2.0 and short[source["from"]].roles == run.roles
        assert _folder_digest(old) == before[source["from"]]  # the shorter run is left as it was
        old_points = {p["time_s"]: p for p in json.loads((old / "curve.json").read_text())["points"]}
        points = {p["time_s"]: p for p in json.loads((folder / "curve.json").read_text())["points"]}
        assert sorted(points) == [1.0, 2.0, 4.0]
        for t in (1.0, 2.0):  # the first part of the longer curve is the shorter curve
            assert points[t]["step"] == old_points[t]["step"] and points[t]["test_forces_mae"] == pytest.approx(
                old_points[t]["test_forces_mae"]
            )
        record, old_record = (json.loads((f / "test_metrics.json").read_text()) for f in (folder, old))
        assert 4.0 <= record["train_seconds"] < 8.0 and record["epochs"] > old_record["epochs"]
        assert points[4.0]["step"] > points[2.0]["step"]
        # trained on from the shorter run's last checkpoint: its logs, then one more version from its last epoch on
        old_logs, logs = (sorted(p.name for p in (f / "logs").glob("version_*")) for f in (old, folder))
        assert logs[: len(old_logs)] == old_logs and len(logs) == len(old_logs) + 1
        with open(folder / "logs" / logs[-1] / "metrics.csv") as handle:
            first = min(int(r["epoch"]) for r in csv.DictReader(handle))
        assert old_record["epochs"] - 1 <= first <= old_record["epochs"], (first, old_record["epochs"])


def test_a_cross_over_is_undecided_with_one_seed():
    def summary(seeds, crossover_s):
        return {"arms": {"host + FreeCG": {"seeds": seeds}, "host": {"seeds": seeds}}, "verdicts": {}, "crossover_s": crossover_s}

    assert crossover_text(summary(1, None)) == "undecided (one seed)"  # no spread: no clear lead either way
    assert crossover_text(summary(3, None)) == "none within the horizon"
    assert crossover_text(summary(3, 240.0)) == "240"


def test_each_seed_is_reported_and_the_changes_are_paired_by_seed(tmp_path):
    ends = {  # seed -> arm -> test force MAE at the horizon; seed 3 lacks the equal-parameters arm
        1: {"host + FreeCG": 0.9, "host": 1.0, "host, equal parameters": 1.0},
        2: {"host + FreeCG": 0.8, "host": 1.0, "host, equal parameters": 0.9},
        3: {"host + FreeCG": 0.95, "host": 1.0},
    }
    runs = []
    for seed, arms in ends.items():
        for arm, error in arms.items():
            folder = f"runs/{seed}{arm}"
            points = [{"time_s": t, "epoch": int(10 * t) + seed, "test_forces_mae": error * (2 if t == 1.0 else 1)} for t in (1.0, 2.0)]
            (tmp_path / folder).mkdir(parents=True)
            (tmp_path / folder / "curve.json").write_text(json.dumps({"points": points}))
            runs.append(SimpleNamespace(budget="curve", folder=folder, roles=[["painn", arm]], seed=seed))
    (summary,) = curve_report(tmp_path, runs, "kcal/mol")["summaries"]
    assert [row["seed"] for row in summary["per_seed"]] == [1, 2, 3]
    assert summary["per_seed"][2]["arms"]["host"] == {"error": 1.0, "epoch": 23}
    paired = summary["paired_change_percent"]
    assert paired["host"]["values"] == pytest.approx([-10.0, -20.0, -5.0]) and paired["host"]["n"] == 3
    assert paired["host, equal parameters"]["values"] == pytest.approx([-10.0, 100 * (0.8 / 0.9 - 1)])
    rows = seed_rows(summary)
    assert rows[2] == ["3", "0.950 (23)", "1.000 (23)", "", "-5.0 %", ""]
    assert rows[-1][0] == "paired" and rows[-1][4] == "-11.7 ± 7.6 %"
    assert "| painn | paired |" in (tmp_path / "curves.md").read_text()
