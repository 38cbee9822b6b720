"""Every row of the bad-input table (docs/bad_inputs.yaml, shown in the docs): the command fails
with exit status 2 and one line holding the row's message, before any long work, and leaves
nothing new behind (no output folder, no half-written file); an API case raises one line."""

import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.damage import flip_a_byte_in_a_tensor
from helpers.tiny import PAINN, SO3NET, tiny_plan, train_tiny

pytest.importorskip("lightning")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TABLE = yaml.safe_load((ROOT / "docs" / "bad_inputs.yaml").read_text())
FREECG = Path(sys.executable).with_name("freecg")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny PaiNN + FreeCG trained on ethanol, and its model file."""
    from freecg_plugin.checkpoint import export_model

    out = tmp_path_factory.mktemp("trained")
    checkpoint = train_tiny(out)
    return checkpoint, export_model(checkpoint, out / "model.freecg")


def ethanol():
    from freecg_plugin.md import load_structure

    atoms = load_structure("rmd17/ethanol", 0, None)
    atoms.info["energy"], atoms.arrays["forces"] = -1.0, np.zeros((len(atoms), 3))
    return atoms


def write_frames(path: Path, change=None) -> Path:
    from ase.io import write

    atoms = ethanol()
    if change is not None:
        change(atoms)
    write(path, [atoms, ethanol()], format="extxyz")
    return path


def _nan(atoms):
    atoms.positions[2, 1] = np.nan


def _close(atoms):
    atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]


def _flat(atoms):
    atoms.set_cell([[6.0, 0, 0], [0, 6.0, 0], [3.0, 3.0, 0.0]])
    atoms.pbc = True


def _chlorine(atoms):
    atoms.numbers[0] = 17


def _plan(tmp: Path, **changes) -> Path:
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(tiny_plan(tmp / "compare", **changes)))
    return path


def _visnet(tmp: Path) -> Path:
    from freecg_plugin.configs import TrainConfig
    from freecg_plugin.training import train

    out = tmp.parent / f"{tmp.name}_visnet"  # outside {tmp}: made by the setup, not by the command
    train(TrainConfig.from_dict({
        "data": {"dataset": "rmd17/ethanol", "n_train": 4, "n_val": 2, "n_test": 2},
        "model": {"host": "visnet", "args": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 8, "num_rbf": 4}, "cutoff": 4.0, "freecg": {"groups": 2}},
        "optim": {"batch_size": 2, "max_epochs": 1, "warmup_steps": 1}, "output": str(out), "accelerator": "cpu",
    }))  # fmt: skip
    return out / "checkpoints" / "best.ckpt"


def _tampered(tmp: Path, model: Path) -> Path:
    with zipfile.ZipFile(model) as archive:
        record, weights = archive.read("model.json"), bytearray(archive.read("weights.safetensors"))
    weights[-3] ^= 0xFF
    with zipfile.ZipFile(tmp / "tampered.freecg", "w") as archive:
        archive.writestr("model.json", record)
        archive.writestr("weights.safetensors", bytes(weights))
    write_frames(tmp / "x.xyz")
    return tmp / "tampered.freecg"


def setup(name: str, tmp: Path, checkpoint: Path, model: Path) -> Path:
    """Make the file a row needs; returns it."""
    if name == "bad_yaml":
        (tmp / "bad.yaml").write_text("data: [1, 2\n")
        return tmp / "bad.yaml"
    if name == "folder":
        (tmp / "a folder").mkdir()
        return tmp / "a folder"
    if name == "read_only_folder":
        (tmp / "read only").mkdir(mode=0o555)
        return tmp / "read only"
    if name == "read_only_plan":
        (tmp / "read only").mkdir(mode=0o555)
        path = tmp / "plan.yaml"
        path.write_text(yaml.safe_dump(tiny_plan(tmp / "read only" / "compare")))
        return path
    if name == "text_npz":
        (tmp / "frames.npz").write_text("energy,forces\n1,2\n")
        return tmp / "frames.npz"
    if name == "empty_xyz":
        (tmp / "empty.xyz").write_text('0\nProperties=species:S:1:pos:R:3:forces:R:3 energy=0.0 pbc="F F F"\n')
        return tmp / "empty.xyz"
    changes = {"good_xyz": None, "nan_xyz": _nan, "close_xyz": _close, "flat_cell_xyz": _flat, "chlorine_xyz": _chlorine}
    if name in changes:
        return write_frames(tmp / f"{name} é.xyz", changes[name])  # a space and a non-ASCII letter in every data path
    if name == "truncated_ckpt":
        (tmp / "truncated.ckpt").write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
        return tmp / "truncated.ckpt"
    if name == "flipped_ckpt":
        flip_a_byte_in_a_tensor(checkpoint, tmp / "flipped.ckpt")
        return tmp / "flipped.ckpt"
    if name == "tampered_model":
        return _tampered(tmp, model)
    if name == "plan_weekly":
        return _plan(tmp, budgets=["weekly"])
    if name == "plan_bad_groups":
        return _plan(tmp, hosts=[dict(PAINN, freecg={"groups": 3})])
    if name == "plan_mace_nequip":
        return _plan(tmp, hosts=[{"host": "mace", "args": {}, "freecg": {}}, {"host": "nequip", "args": {}, "freecg": {}}])
    if name == "plan_pbs":
        return _plan(tmp, executor="pbs")
    if name == "visnet_ckpt":
        return _visnet(tmp)
    raise KeyError(name)


def api_case(name: str, tmp: Path, checkpoint: Path) -> None:
    """Run an API row (it must raise)."""
    if name == "layer_groups":
        from freecg_plugin import FreeCGLayer

        FreeCGLayer(irreps="1o", channels=6, groups=4)
    elif name == "layer_paths":
        from freecg_plugin import FreeCGLayer

        FreeCGLayer(irreps="0e+1o", channels=8, groups=2, symmetry="O3", paths=["1o x 1o -> 1o"])
    elif name == "calculator_missing":
        from freecg_plugin.integrations import FreeCGCalculator

        FreeCGCalculator(str(tmp / "missing.ckpt"))
    elif name == "torchsim_element":
        import torch
        import torch_sim as ts

        from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel

        atoms = ethanol()
        _chlorine(atoms)
        FreeCGTorchSimModel(str(checkpoint))(ts.initialize_state([atoms], torch.device("cpu"), torch.float64))
    elif name == "splice_wrong_host":
        import schnetpack as spk

        from freecg_plugin.adapters.schnetpack import splice_painn

        cutoff = spk.nn.CosineCutoff(4.0)
        so3net = spk.representation.SO3net(
            n_atom_basis=8, n_interactions=1, lmax=1, radial_basis=spk.nn.GaussianRBF(6, 4.0), cutoff_fn=cutoff
        )
        splice_painn(so3net, dict(SO3NET["freecg"]))
    else:
        raise KeyError(name)


def fill(value: str, **names) -> str:
    return value.format(**{k: str(v) for k, v in names.items()})


def command(row: dict, **names) -> list:
    """The row's command line: as an unprivileged process if the row asks (root keeps its user id
    but loses the capabilities that let it write into any folder)."""
    line = [str(FREECG), *(fill(a, **names) for a in row["run"])]
    if row.get("unprivileged") and os.geteuid() == 0:
        line = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *line]
    return line


def limits(row: dict):
    """What the child sets before it starts: the row's file-size limit."""
    if "file_size_limit" not in row:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (row["file_size_limit"], row["file_size_limit"]))


def test_the_table_is_long_enough_and_names_every_command():
    assert len(TABLE) >= 30 and len({row["case"] for row in TABLE}) == len(TABLE)
    commands = {row["run"][0] for row in TABLE if isinstance(row["run"], list)}
    assert {"train", "test", "evaluate", "compare", "md", "md-analyse", "data", "export"} <= commands
    assert sum(isinstance(row["run"], str) for row in TABLE) >= 5
    assert sum(bool(row.get("unprivileged")) for row in TABLE) >= 2 and sum("file_size_limit" in row for row in TABLE) >= 2


@pytest.mark.parametrize("row", TABLE, ids=[row["case"] for row in TABLE])
def test_bad_input(row, trained, tmp_path):
    checkpoint, model = trained
    tmp = tmp_path / "work"
    tmp.mkdir()
    file = setup(row["setup"], tmp, checkpoint, model) if "setup" in row else None
    before = sorted(p.relative_to(tmp) for p in tmp.rglob("*"))
    names = {"tmp": tmp, "ckpt": checkpoint, "model": model, "file": file}
    if isinstance(row["run"], str):
        with pytest.raises((ValueError, FileNotFoundError, TypeError)) as caught:
            api_case(row["run"].removeprefix("python: "), tmp, checkpoint)
        message = str(caught.value)
        assert "\n" not in message and row["message"] in message, message
    else:
        done = subprocess.run(command(row, **names), capture_output=True, text=True, cwd=tmp_path, timeout=600, preexec_fn=limits(row))
        assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        assert done.stderr.count("\n") == 1 and row["message"] in done.stderr, done.stderr[-2000:]
    after = sorted(p.relative_to(tmp) for p in tmp.rglob("*"))
    assert after == before, f"left behind: {sorted(set(after) - set(before))}"


def test_the_docs_table_is_made_from_the_same_rows():
    sys.path.insert(0, str(ROOT / "docs"))
    from bad_inputs_table import markdown

    text = markdown(TABLE)
    assert all(row["case"] in text and row["message"].replace("|", "\\|") in text for row in TABLE)
    assert json.loads(json.dumps(TABLE)) == TABLE  # plain values only
