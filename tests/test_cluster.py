"""Plans beyond one machine: each run's record says what ran and where (code hash, versions,
hardware); finished runs made by other code are stale (reported, set aside, redone, or kept with
--accept-stale); runs import the plan's code snapshot, not the working tree; the same plan as
jobs (submitit's local executor, and a real one-node SLURM cluster: `scripts/slurm_cluster.sh`)
gives the local run's runs and verdict structure; a job cancelled with scancel is reported as
failed with its log and resumes when the plan runs again."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.tiny import PAINN, SO3NET, tiny_plan

pytest.importorskip("lightning")

from freecg_plugin.compare import CompareConfig, load_compare_config  # noqa: E402
from freecg_plugin.provenance import code_identity, package_files, same_hardware, sources_hash  # noqa: E402


def test_the_sources_hash_follows_the_sources_not_their_location(tmp_path):
    copy = tmp_path / "copy"
    for name, path in package_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy / name)
    here = code_identity()["sources_sha256"]
    assert sources_hash(copy / "freecg_plugin") == here == sources_hash()
    assert any(name.startswith("freecg_plugin/adapters/") for name, _ in package_files())
    (copy / "freecg_plugin" / "README.txt").write_text("not a source")  # documentation does not count
    assert sources_hash(copy / "freecg_plugin") == here
    layer = copy / "freecg_plugin" / "nn" / "layer.py"
    layer.write_text(layer.read_text() + "\n# an edit\n")
    assert sources_hash(copy / "freecg_plugin") != here
    assert same_hardware({"cpu": "A", "cores": 2, "gpus": 0}, {"cpu": "A", "cores": 2, "gpus": 0, "host": "other"})
    assert not same_hardware({"cpu": "A", "cores": 2, "gpus": 1, "gpu": "H100"}, {"cpu": "A", "cores": 2, "gpus": 1, "gpu": "A100"})


def test_a_plans_code_snapshot_holds_what_the_package_ships_and_runs_the_compiled_kernel(tmp_path):
    """The snapshot a plan's runs import holds every file a wheel ships (pyproject's package data),
    the group CG kernel's C++ source among them: without it, every FreeCG run of a plan fell back
    to the slower torch contraction (the `curves` plan, 2026-12-07)."""
    import tomllib

    from freecg_plugin.compare.snapshot import snapshot_code, snapshot_environment

    root = Path(__file__).resolve().parents[1]
    snapshot = snapshot_code(tmp_path)
    shipped = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in shipped.items():
        for pattern in patterns:
            files = [p.relative_to(root) for p in (root / Path(*package.split("."))).glob(pattern)]
            assert files and all((snapshot / f).is_file() for f in files), (package, pattern)
    probe = (
        "import freecg_plugin; from freecg_plugin.nn._group_cg_kernel import library; print(freecg_plugin.__file__, library() is not None)"
    )
    here = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    there = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=snapshot_environment(snapshot), cwd=tmp_path
    ).stdout.split()
    assert Path(there[0]).is_relative_to(snapshot) and there[1] == here[1] == "True", (here, there)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"executor": "pbs"}, "executor must be one of"),
        ({"executor": "slurm", "slurm": {"partitions": "gpu"}}, "slurm has unknown keys \\['partitions'\\]"),
        ({"slurm": {"partition": "gpu"}}, "need `executor: slurm`"),
    ],
)
def test_bad_executor_settings_name_the_problem(change, message, tmp_path):
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(tiny_plan(tmp_path / "out", **change)))
    with pytest.raises(ValueError, match=message):
        load_compare_config(tmp_path / "plan.yaml")
    assert (
        CompareConfig(**{**tiny_plan(tmp_path), "executor": "slurm", "slurm": {"partition": "gpu", "max_parallel": 4}}).executor == "slurm"
    )


def freecg(*args, timeout=1500):
    return subprocess.run([sys.executable, "-m", "freecg_plugin.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def small_plan(tmp_path, name, **changes):
    """Two hosts, one seed, equal epochs and equal time, two epochs each."""
    plan = tiny_plan(tmp_path / name, hosts=[PAINN, SO3NET], seeds=[1], budgets=["epochs", "time"], **changes)
    plan["optim"] = dict(plan["optim"], max_epochs=2)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def results(output: Path):
    comparison = json.loads((output / "comparison.json").read_text())
    rows = {(r["host"], r["variant"], r["budget"]): r for r in comparison["rows"]}
    verdicts = sorted((v["host"], v["budget"]) for v in comparison["verdicts"])
    return rows, verdicts


@pytest.fixture(scope="module")
def local_plan(tmp_path_factory):
    """The small plan run with the default executor (the reference for the job executors)."""
    tmp_path = tmp_path_factory.mktemp("local")
    config = small_plan(tmp_path, "local")
    done = freecg("compare", "--config", config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp_path / "local", config


def assert_same_plan(output: Path, reference: Path):
    mine, theirs = results(output), results(reference)
    assert mine[0].keys() == theirs[0].keys() and mine[1] == theirs[1]
    assert sorted(p.name for p in (output / "runs").iterdir()) == sorted(p.name for p in (reference / "runs").iterdir())
    for key, row in theirs[0].items():
        if key[2] == "epochs":  # same code, data, seed and epochs: the same model up to the machine's noise
            assert mine[0][key]["forces_mae"]["mean"] == pytest.approx(row["forces_mae"]["mean"], rel=0.05), key


@pytest.mark.slow
def test_records_say_what_ran_where_and_runs_use_the_snapshot(local_plan):
    output, _ = local_plan
    folders = sorted((output / "runs").iterdir())
    assert len(folders) == 6
    (snapshot,) = (output / "code").iterdir()
    for folder in folders:
        record = json.loads((folder / "test_metrics.json").read_text())["provenance"]
        assert record["code"]["sources_sha256"] == code_identity()["sources_sha256"]
        assert record["code"]["path"] == str(snapshot / "freecg_plugin")  # the snapshot, not the working tree
        assert record["versions"]["torch"] and record["versions"]["schnetpack"]
        assert record["hardware"]["cpu"] and record["hardware"]["cores"] >= 1 and "gpus" in record["hardware"]
    assert (snapshot / "examples" / "data").is_dir()


@pytest.mark.slow
def test_stale_runs_are_reported_set_aside_and_redone_unless_accepted(local_plan, tmp_path):
    reference, config = local_plan
    output = tmp_path / "stale"
    shutil.copytree(reference, output)
    plan = yaml.safe_load(config.read_text())
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(dict(plan, output=str(output))))
    victim = sorted((output / "runs").iterdir())[0]
    record = json.loads((victim / "test_metrics.json").read_text())
    record["provenance"]["code"]["sources_sha256"] = "0" * 64  # made by other code
    (victim / "test_metrics.json").write_text(json.dumps(record))
    status = freecg("compare", "--config", tmp_path / "plan.yaml", "--status")
    assert status.returncode == 0 and "stale" in status.stdout and "made by code 000000000000" in status.stdout, status.stdout
    assert "1 stale" in status.stdout.splitlines()[-1] and "5 finished" in status.stdout.splitlines()[-1]
    refused = freecg("compare", "--config", tmp_path / "plan.yaml", "--report-only")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--accept-stale" in refused.stderr, refused.stderr
    assert freecg("compare", "--config", tmp_path / "plan.yaml", "--report-only", "--accept-stale").returncode == 0
    redone = freecg("compare", "--config", tmp_path / "plan.yaml")
    assert redone.returncode == 0, redone.stderr[-3000:]
    assert "stale (made by code 000000000000): set aside" in redone.stdout and "6 runs in the plan, 5 already finished" in redone.stdout
    assert (victim.with_name(victim.name + ".stale-1") / "test_metrics.json").is_file()
    fresh = json.loads((victim / "test_metrics.json").read_text())
    assert fresh["provenance"]["code"]["sources_sha256"] == code_identity()["sources_sha256"]

    # an equal-time run on another kind of machine than the run whose time it got: refused in one line
    (timed,) = [r for r in json.loads((output / "plan.json").read_text()) if r["time_of"] and r["roles"][0][0] == "painn"]
    path = output / "runs" / timed["key"] / "test_metrics.json"
    record = json.loads(path.read_text())
    record["provenance"]["hardware"]["cpu"] = "another CPU"
    path.write_text(json.dumps(record))
    refused = freecg("compare", "--config", tmp_path / "plan.yaml", "--report-only")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "equal time needs the same hardware" in refused.stderr


@pytest.mark.slow
def test_the_plan_as_local_jobs_matches_the_local_run(local_plan, tmp_path):
    pytest.importorskip("submitit")
    reference, _ = local_plan
    config = small_plan(tmp_path, "jobs", executor="local_jobs", slurm={"max_parallel": 1})
    done = freecg("compare", "--config", config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("submitted: ") == 6
    assert_same_plan(tmp_path / "jobs", reference)


def slurm_running() -> bool:
    try:
        return subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout.strip() in (
            "idle",
            "mixed",
            "allocated",
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def slurm():
    pytest.importorskip("submitit")
    if not slurm_running():
        if os.environ.get("CI") == "true":
            pytest.fail("no SLURM scheduler is running: CI starts one with scripts/slurm_cluster.sh")
        pytest.skip("no SLURM scheduler is running here (bash scripts/slurm_cluster.sh starts a one-node cluster)")


@pytest.mark.slow
def test_the_plan_on_slurm_matches_the_local_run(slurm, local_plan, tmp_path):
    reference, _ = local_plan
    config = small_plan(tmp_path, "slurm", executor="slurm", slurm={"cpus_per_task": 2, "time": 30})
    start = time.monotonic()
    done = freecg("compare", "--config", config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"six runs as SLURM jobs in {time.monotonic() - start:.0f} s")
    assert done.stdout.count("submitted: ") == 6
    assert_same_plan(tmp_path / "slurm", reference)
    for folder in (tmp_path / "slurm" / "runs").iterdir():
        hardware = json.loads((folder / "test_metrics.json").read_text())["provenance"]["hardware"]
        assert hardware["slurm"]["job_id"] == json.loads((folder / "job.json").read_text())["job_id"]


@pytest.mark.slow
def test_a_cancelled_job_is_reported_failed_and_resumes_when_the_plan_runs_again(slurm, tmp_path):
    plan = tiny_plan(tmp_path / "out", seeds=[1], budgets=["epochs"], executor="slurm", slurm={"cpus_per_task": 2, "max_parallel": 1})
    plan["optim"] = dict(plan["optim"], max_epochs=EPOCHS)  # two runs (host + FreeCG, host), one job at a time
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    driver = subprocess.Popen(
        [sys.executable, "-m", "freecg_plugin.cli", "compare", "--config", str(tmp_path / "plan.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    runs = tmp_path / "out" / "runs"
    while not list(runs.glob("*/checkpoints/last.ckpt")):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.5)
    (folder,) = [f.parent.parent for f in runs.glob("*/checkpoints/last.ckpt")]
    job = json.loads((folder / "job.json").read_text())["job_id"]
    subprocess.run(["scancel", job], check=True)
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 2 and f"failed (job {job}); log: " in out and "1 of 2 runs failed" in err, out[-2000:] + err[-2000:]
    assert err.count("\n") == 1 and "done: " in out  # the other run went on and finished
    status = freecg("compare", "--config", tmp_path / "plan.yaml", "--status")
    lines = status.stdout.splitlines()
    assert any(line.startswith("failed") and folder.name in line and "log: " in line for line in lines), status.stdout
    assert lines[-1] == "1 finished; 1 failed (2 runs)", status.stdout
    again = freecg("compare", "--config", tmp_path / "plan.yaml")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "2 runs in the plan, 1 already finished" in again.stdout
    assert (folder / "train.log").read_text().count(" parameters on ") == 2  # started twice: resumed from its checkpoint
    assert json.loads((folder / "test_metrics.json").read_text())["epochs"] == EPOCHS
    assert freecg("compare", "--config", tmp_path / "plan.yaml", "--status").stdout.splitlines()[-1] == "2 finished (2 runs)"


EPOCHS = 150
