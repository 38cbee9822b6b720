"""Trained models leave the training process safely: checkpoints are read without unpickling
(whatever the environment says), a crafted checkpoint is refused in one line before its code can
run, ``freecg export`` writes a model file (safetensors + JSON) that the calculator, TorchSim and
``freecg evaluate`` load with the same numbers, and a damaged, tampered or newer file, or one
whose host is not installed, is refused in one line."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("safetensors")

from helpers.damage import flip_a_byte_in_a_tensor  # noqa: E402
from helpers.tiny import train_tiny  # noqa: E402

from freecg_plugin.checkpoint import convert_checkpoint, export_model, load_trained_model  # noqa: E402

FREECG = Path(sys.executable).with_name("freecg")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    checkpoint = train_tiny(out, ema_decay=0.9)
    return checkpoint, export_model(checkpoint, out / "model.freecg")


def ethanol():
    from freecg_plugin.md import load_structure

    return load_structure("rmd17/ethanol", 3, None)


def energy_forces(source):
    from freecg_plugin.integrations import FreeCGCalculator

    atoms = ethanol()
    atoms.calc = FreeCGCalculator(str(source))
    return atoms.get_potential_energy(), atoms.get_forces()


def test_the_model_file_gives_the_checkpoints_numbers_everywhere(trained, tmp_path):
    checkpoint, model = trained
    with zipfile.ZipFile(model) as archive:
        assert sorted(archive.namelist()) == ["model.json", "weights.safetensors"]
        record = json.loads(archive.read("model.json"))
    assert record["format"] == "freecg-model" and record["config"]["model"]["host"] == "painn" and record["elements"] == [1, 6, 8]
    assert record["energy_unit"] == "kcal/mol" and record["written_by"].startswith("freecg-plugin") and len(record["weights_sha256"]) == 64
    e_ckpt, f_ckpt = energy_forces(checkpoint)
    e_file, f_file = energy_forces(model)
    assert e_file == e_ckpt and np.array_equal(f_file, f_ckpt)
    from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel

    assert FreeCGTorchSimModel(str(model)).elements == [1, 6, 8]
    from ase.io import write

    from freecg_plugin.evaluation import evaluate_file

    frames = [ethanol()]
    frames[0].info["energy"], frames[0].arrays["forces"] = float(e_ckpt), f_ckpt  # labels in eV
    write(tmp_path / "frames.xyz", frames, format="extxyz")
    a = evaluate_file(str(checkpoint), str(tmp_path / "frames.xyz"), energy_unit="eV", device="cpu")
    b = evaluate_file(str(model), str(tmp_path / "frames.xyz"), energy_unit="eV", device="cpu")
    assert a["forces_mae"] == pytest.approx(b["forces_mae"]) and a["energy_mae"] == pytest.approx(b["energy_mae"])


def rewrite(source: Path, target: Path, record=None, weights=None) -> Path:
    with zipfile.ZipFile(source) as archive:
        json_bytes, weight_bytes = archive.read("model.json"), archive.read("weights.safetensors")
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("model.json", json.dumps(record) if record is not None else json_bytes)
        archive.writestr("weights.safetensors", weights if weights is not None else weight_bytes)
    return target


def test_the_same_checkpoint_always_gives_the_same_bytes(trained, tmp_path):
    """A model file holds no time of writing: one kept in git changes only when its model does."""
    checkpoint, first = trained
    again = export_model(checkpoint, tmp_path / "again.freecg")
    assert again.read_bytes() == first.read_bytes()
    with zipfile.ZipFile(again) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_damaged_tampered_and_newer_files_are_refused_in_one_line(trained, tmp_path):
    _, model = trained
    truncated = tmp_path / "truncated.freecg"
    truncated.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with zipfile.ZipFile(model) as archive:
        record, weights = json.loads(archive.read("model.json")), bytearray(archive.read("weights.safetensors"))
    weights[-5] ^= 0xFF
    cases = {
        truncated: "not a readable freecg model file",
        rewrite(model, tmp_path / "tampered.freecg", weights=bytes(weights)): "do not match their SHA-256",
        rewrite(model, tmp_path / "newer.freecg", record=dict(record, format_version=99)): "upgrade it",
        rewrite(model, tmp_path / "other.freecg", record=dict(record, format="something")): "not a freecg model file",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as caught:
            load_trained_model(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_checkpoint_with_a_changed_tensor_byte_is_refused_not_evaluated(trained, tmp_path):
    checkpoint, _ = trained
    damaged = tmp_path / "damaged.ckpt"
    flip_a_byte_in_a_tensor(checkpoint, damaged)
    with pytest.raises(ValueError, match="fails its CRC check") as caught:
        load_trained_model(damaged)
    assert "\n" not in str(caught.value) and str(damaged) in str(caught.value)
    done = subprocess.run([str(FREECG), "test", "--checkpoint", str(damaged)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "fails its CRC check" in done.stderr, done.stderr[-2000:]


NO_SCHNETPACK = """
import sys
sys.modules["schnetpack"] = None
from freecg_plugin.cli import main
sys.exit(main(["evaluate", "--checkpoint", sys.argv[1], "--data", sys.argv[2]]))
"""


class Payload:
    """Unpickling this opens (creates) a file: what a crafted checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.slow
def test_a_crafted_checkpoint_is_refused_before_its_code_runs(trained, tmp_path):
    checkpoint, model = trained
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.ckpt"
    contents = torch.load(checkpoint, weights_only=True)
    contents["hyper_parameters"]["note"] = Payload(marker)
    torch.save(contents, evil)
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")  # what the SchNetPack docs once told users to export
    commands = [
        ["test", "--checkpoint", evil],
        ["evaluate", "--checkpoint", evil, "--data", tmp_path / "x.xyz"],
        ["md", "--checkpoint", evil, "--output", tmp_path / "md"],
        ["export", evil, "--output", tmp_path / "evil.freecg"],
        ["convert", evil, "--output", tmp_path / "new.ckpt"],
        ["train", "--config", "small", "--resume", evil, "optim.max_epochs=1", f"output={tmp_path / 'run'}"],
    ]
    for command in commands:
        done = subprocess.run([str(FREECG), *map(str, command)], capture_output=True, text=True, env=env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (command, done.stderr[-2000:])
        assert "--trust" in done.stderr and "unpickl" in done.stderr and not marker.exists(), (command, done.stderr)
    assert not (tmp_path / "evil.freecg").exists() and not (tmp_path / "md").exists()
    missing = subprocess.run([sys.executable, "-c", NO_SCHNETPACK, str(model), str(tmp_path / "x.xyz")], capture_output=True, text=True)
    assert missing.returncode == 2 and "pip install 'freecg-plugin[schnetpack]'" in missing.stderr and missing.stderr.count("\n") == 1


def test_convert_rewrites_a_trusted_old_checkpoint_that_needed_unpickling(trained, tmp_path):
    checkpoint, _ = trained
    old = tmp_path / "old.ckpt"
    contents = torch.load(checkpoint, weights_only=True)
    contents["hyper_parameters"]["energy_mean"] = np.float64(contents["hyper_parameters"]["energy_mean"])  # a numpy scalar
    torch.save(contents, old)
    with pytest.raises(ValueError, match="refused: it holds Python objects"):
        load_trained_model(old)
    with pytest.raises(ValueError, match="pass --trust"):
        convert_checkpoint(old, tmp_path / "new.ckpt")
    new = convert_checkpoint(old, tmp_path / "new.ckpt", trust=True)
    torch.load(new, weights_only=True)
    e_old, f_old = energy_forces(checkpoint)
    e_new, f_new = energy_forces(new)
    assert e_new == e_old and np.array_equal(f_new, f_old)


@pytest.mark.slow
def test_freecg_md_and_test_run_from_the_model_file(trained, tmp_path):
    _, model = trained
    md = subprocess.run(
        [str(FREECG), "md", "--checkpoint", str(model), "--output", str(tmp_path / "md"), "--ensemble", "nve", "--time", "0.01", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert md.returncode == 0 and "completed: 20 steps" in md.stdout, md.stderr[-2000:]
    analysed = subprocess.run([str(FREECG), "md-analyse", str(tmp_path / "md")], capture_output=True, text=True)
    assert analysed.returncode == 0 and "status: completed" in analysed.stdout, analysed.stderr[-2000:]
    assert (tmp_path / "md" / "analysis.json").is_file()
    tested = subprocess.run([str(FREECG), "test", "--checkpoint", str(model)], capture_output=True, text=True, cwd=tmp_path)
    assert tested.returncode == 0 and "| forces (per Å) |" in tested.stdout, tested.stderr[-2000:]


@pytest.mark.slow
def test_reports_go_beside_the_model_never_into_the_working_folder_or_another_run(trained, tmp_path):
    checkpoint, _ = trained
    moved = tmp_path / "moved" / "checkpoints"
    moved.mkdir(parents=True)
    (moved / "best.ckpt").write_bytes(checkpoint.read_bytes())  # its stored output folder is the original run's
    original = checkpoint.parent.parent / "force_parity.png"
    stamp = original.stat().st_mtime_ns
    work = tmp_path / "work"
    work.mkdir()
    from ase.io import write

    frame = ethanol()
    frame.info["energy"], frame.arrays["forces"] = -1.0, np.zeros((len(frame), 3))
    write(work / "frames.xyz", [frame], format="extxyz")
    tested = subprocess.run([str(FREECG), "test", "--checkpoint", str(moved / "best.ckpt")], capture_output=True, text=True, cwd=work)
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert (tmp_path / "moved" / "force_parity.png").is_file() and original.stat().st_mtime_ns == stamp
    evaluated = subprocess.run(
        [str(FREECG), "evaluate", "--checkpoint", str(moved / "best.ckpt"), "--data", "frames.xyz", "--energy-unit", "eV"],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert (tmp_path / "moved" / "evaluate_frames_force_parity.png").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["frames.xyz"]  # nothing written into the working folder
