"""kill -9 at random moments: ``freecg train``, ``freecg compare``, ``freecg md`` and ``freecg data
fetch`` are each killed (SIGKILL to the whole process group, so nothing can clean up) at
:data:`MOMENTS` seeded random moments of an uninterrupted run's duration (for training, one in each
phase of it: start-up, three parts of the epochs, the finish), then continued the way a
user would (``--resume``, or the same command again), and the result must equal the uninterrupted
run: bit for bit for MD and downloads; for training the same epochs and metrics within float
rounding, every epoch and second counted once (an epoch the kill caught between logging its
metrics and saving its checkpoint is trained again and logged again, with the same values); for
compare the same runs, keys, epoch counts and metrics. No file may be left corrupt, half-written
or duplicated."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.tiny import PAINN, tiny_plan

pytest.importorskip("lightning")
pytestmark = pytest.mark.slow

MOMENTS = 5
FREECG = Path(sys.executable).with_name("freecg")
DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def moments(duration: float, what: str) -> list:
    """:data:`MOMENTS` kill times (seconds after the start) spread over ``duration``, seeded by
    ``what``: the same moments on every run of the suite."""
    rng = random.Random(f"faults-{what}")
    return sorted(rng.uniform(0.03, 0.9) * duration for _ in range(MOMENTS))


def in_phases(phases: list, what: str) -> list:
    """One kill time (seconds after the start) in each ``(start, end)`` phase of an uninterrupted
    run, seeded by ``what``: kills land in every phase whatever the machine's speed."""
    rng = random.Random(f"faults-{what}")
    return [rng.uniform(start, end) for start, end in phases]


def run(command: list, env=None) -> float:
    """Run ``command`` to its end (it must succeed); returns its wall time."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    return time.perf_counter() - start


def training_phases(command: list) -> list:
    """Run ``freecg train`` to its end and cut its wall time into :data:`MOMENTS` phases: the
    start-up (to the first epoch's line), three equal parts of the epochs, and the finish (the
    test and the last files)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    epochs, lines = [], []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("epoch "):
            epochs.append(time.perf_counter() - start)
    assert process.wait(timeout=900) == 0, "".join(lines[-30:])
    end = time.perf_counter() - start
    first, last = epochs[0], epochs[-1]
    third = (last - first) / 3
    return [(0.05 * first, first), (first, first + third), (first + third, last - third), (last - third, last), (last, end)]


def kill_at(command: list, seconds: float, env=None) -> bool:
    """Start ``command``, SIGKILL its process group after ``seconds``; True if it was still running."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def leftovers(folder: Path) -> list:
    """Temporary files of an atomic write that a kill interrupted: none may be left once the
    command has finished again."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and _temporary(p))


def _temporary(path: Path) -> bool:
    parts = path.name.split(".")
    return path.name.endswith((".tmp", ".part")) or (
        len(parts) >= 3 and len(parts[-2]) == 8 and parts[-2].isalnum() and parts[-2].islower()
    )


def assert_killed_enough(killed: list) -> None:
    assert sum(killed) >= MOMENTS - 1, f"only {sum(killed)} of {MOMENTS} moments interrupted a run: {killed}"


# -- training ---------------------------------------------------------------------------------


def _train_config(folder: Path) -> Path:
    config = {
        "data": {"dataset": "rmd17/ethanol", "n_train": 16, "n_val": 4, "n_test": 8},
        "model": {"host": PAINN["host"], "args": PAINN["args"], "cutoff": 4.0, "freecg": PAINN["freecg"]},
        "optim": {"batch_size": 4, "max_epochs": 40, "warmup_steps": 2, "seed": 5},
        "output": str(folder / "run"),
        "accelerator": "cpu",
    }
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _continue_training(config: Path) -> None:
    last = config.parent / "run" / "checkpoints" / "last.ckpt"
    run([str(FREECG), "train", "--config", str(config), *(["--resume", str(last)] if last.is_file() else [])])


def _validation_rows(run_folder: Path) -> dict:
    """Per epoch, its logged validation values over every invocation's CSV log (``version_*``)."""
    rows = {}
    for path in sorted((run_folder / "logs").glob("version_*/metrics.csv")):
        with open(path) as handle:
            for r in csv.DictReader(handle):
                if r.get("val_loss"):
                    rows.setdefault(int(r["epoch"]), []).append((r["val_loss"], r["val_forces_mae"], r["val_energy_mae"]))
    return rows


def test_training_killed_anywhere_resumes_to_the_same_model(tmp_path):
    from freecg_plugin.checkpoint import read_checkpoint
    from freecg_plugin.nn._group_cg_kernel import library

    library()  # a cold kernel cache would put the kernel's one-time build into the reference's start-up only
    whole = _train_config(tmp_path / "whole")
    phases = training_phases([str(FREECG), "train", "--config", str(whole)])
    reference = json.loads((whole.parent / "run" / "test_metrics.json").read_text())
    killed = []
    for i, moment in enumerate(in_phases(phases, "train")):
        config = _train_config(tmp_path / f"cut{i}")
        killed.append(kill_at([str(FREECG), "train", "--config", str(config)], moment))
        _continue_training(config)
        folder = config.parent / "run"
        result = json.loads((folder / "test_metrics.json").read_text())
        assert result["epochs"] == reference["epochs"] == 40, (moment, result["epochs"])
        for key in ("energy_mae", "energy_rmse", "forces_mae", "forces_rmse"):
            assert result[key] == pytest.approx(reference[key], rel=1e-5), (moment, key)
        # every epoch logged; one whose metrics were written but whose checkpoint the kill
        # prevented is trained again after the resume, and logged again with the same values
        logged = _validation_rows(folder)
        assert sorted(logged) == list(range(40)), (moment, sorted(logged))
        assert all(len(set(values)) == 1 for values in logged.values()), (moment, {e: v for e, v in logged.items() if len(v) > 1})
        assert result["train_seconds"] > 0
        for checkpoint in (folder / "checkpoints").glob("*.ckpt"):
            read_checkpoint(checkpoint)  # loads, CRCs hold
        assert not leftovers(folder), leftovers(folder)
    assert_killed_enough(killed)


# -- compare ----------------------------------------------------------------------------------


def _compare_rows(output: Path) -> dict:
    report = json.loads((output / "comparison.json").read_text())
    return {(r["host"], r["variant"], r["budget"]): r for r in report["rows"]}


def test_compare_killed_anywhere_finishes_with_the_same_runs(tmp_path):
    def plan(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        settings = tiny_plan(tmp_path / name, seeds=[3], budgets=["epochs"])
        settings["optim"] = dict(settings["optim"], max_epochs=3)
        path.write_text(yaml.safe_dump(settings))
        return path

    command = [str(FREECG), "compare", "--config"]
    duration = run([*command, str(plan("whole"))])
    reference = _compare_rows(tmp_path / "whole")
    assert len(reference) == 2
    killed = []
    for i, moment in enumerate(moments(duration, "compare")):
        path = plan(f"cut{i}")
        killed.append(kill_at([*command, str(path)], moment))
        run([*command, str(path)])
        rows = _compare_rows(tmp_path / f"cut{i}")
        assert rows.keys() == reference.keys(), moment
        for key, row in rows.items():
            assert row["runs"] == reference[key]["runs"] and row["epochs"]["values"] == reference[key]["epochs"]["values"], (moment, key)
            for metric in ("forces_mae", "energy_mae"):
                assert row[metric]["values"] == pytest.approx(reference[key][metric]["values"], rel=1e-5), (moment, key, metric)
        assert not leftovers(tmp_path / f"cut{i}"), leftovers(tmp_path / f"cut{i}")
    assert_killed_enough(killed)


def _children(pid: int) -> list:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_comparison_leaves_no_run_training_on_its_own(tmp_path):
    """SIGKILL to ``freecg compare`` alone (not its process group): the run it started ends too
    (within seconds; undisturbed it would train for many minutes), instead of training on beside
    the next ``freecg compare`` in the same folder (which resumes it: the test above)."""
    path = tmp_path / "plan.yaml"
    settings = tiny_plan(tmp_path / "out", seeds=[3], budgets=["epochs"])
    settings["optim"] = dict(settings["optim"], max_epochs=100_000)
    path.write_text(yaml.safe_dump(settings))
    parent = subprocess.Popen([str(FREECG), "compare", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children = []
    while not children and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.2)
        children = [
            c for c in _children(parent.pid) if "freecg_plugin.cli" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")
        ]
    assert children, "freecg compare started no training run"
    time.sleep(3)  # the run is past its start-up
    assert all(_alive(c) for c in children), "the run ended before the parent was killed: nothing was tested"
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(c) for c in children), "the run kept training after freecg compare was killed"


# -- MD ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ethanol_checkpoint(tmp_path_factory):
    from helpers.tiny import train_tiny

    return train_tiny(tmp_path_factory.mktemp("md_model") / "run", frames=16, epochs=4)


def test_md_killed_anywhere_resumes_bit_for_bit(ethanol_checkpoint, tmp_path):
    settings = ["--ensemble", "langevin", "--temperature", "100", "--time", "0.2", "--save-every", "10", "--seed", "4", "--quiet"]

    def start(output: Path) -> list:
        return [str(FREECG), "md", "--checkpoint", str(ethanol_checkpoint), "--output", str(output), *settings]

    duration = run(start(tmp_path / "whole"))
    files = ("trajectory.extxyz", "log.csv")
    killed = []
    for i, moment in enumerate(moments(duration, "md")):
        output = tmp_path / f"cut{i}"
        killed.append(kill_at(start(output), moment))
        if (output / "state.npz").is_file():
            run([str(FREECG), "md", "--output", str(output), "--resume", "--quiet"])
        else:  # killed before its first state: the same command starts it again
            run(start(output))
        for name in files:
            assert (output / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), (moment, name)
        summary = json.loads((output / "summary.json").read_text())
        assert summary["steps"] == json.loads((tmp_path / "whole" / "summary.json").read_text())["steps"]
        np.load(output / "state.npz")
        assert not leftovers(output), leftovers(output)
    assert_killed_enough(killed)


# -- data fetch -------------------------------------------------------------------------------


def test_data_fetch_killed_anywhere_leaves_the_same_files(serve_folder, tmp_path):
    base = serve_folder(DATA) + "/slow"
    files = ["rmd17_aspirin_train_01.npz", "rmd17_aspirin_test_01.npz"]

    command = [str(FREECG), "data", "fetch", "rmd17/aspirin", "--split", "1"]

    def using(cache: Path) -> dict:
        return {**os.environ, "FREECG_DATA": str(cache), "FREECG_DATA_MIRROR": base}

    duration = run(command, using(tmp_path / "whole"))
    killed = []
    for i, moment in enumerate(moments(duration, "fetch")):
        cache = tmp_path / f"cut{i}"
        killed.append(kill_at(command, moment, using(cache)))
        run(command, using(cache))
        for name in files:
            assert (cache / "rmd17" / name).read_bytes() == (DATA / "rmd17" / name).read_bytes(), (moment, name)
        assert sorted(p.name for p in (cache / "rmd17").iterdir()) == sorted(files), (moment, list((cache / "rmd17").iterdir()))
    assert_killed_enough(killed)


# -- atomic writes ----------------------------------------------------------------------------

_SLOW_WRITER = """
import sys, time
from freecg_plugin.files import write_atomic
def write(tmp):
    open(tmp, "w").write("half")
    print("writing", flush=True)
    time.sleep(60)
write_atomic(sys.argv[1], write)
"""


def test_a_writer_killed_midway_leaves_a_temporary_file_the_next_write_removes(tmp_path):
    """SIGKILL leaves a write's temporary file behind; the next write of the same file removes it
    once its writer is gone, and leaves a live writer's alone."""
    from freecg_plugin.files import write_text

    target = tmp_path / "report.json"
    writers = [subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for writer in writers:
        assert writer.stdout.readline().strip() == "writing"
    temporaries = sorted(tmp_path.glob("report.json.*"))
    assert len(temporaries) == 2
    writers[0].kill()
    writers[0].wait()
    write_text(target, "whole")
    assert target.read_text() == "whole"
    left = sorted(tmp_path.glob("report.json.*"))
    assert len(left) == 1 and f"-{writers[1].pid}." in left[0].name  # the live writer's
    writers[1].kill()
    writers[1].wait()
    write_text(target, "again")
    assert sorted(tmp_path.glob("report.json.*")) == []
