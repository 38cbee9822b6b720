"""``freecg compare`` end to end on a tiny plan, the host builders, and the plan's bookkeeping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from freecg_plugin.training.compare import CompareConfig, load_compare_config, plan, preset_path
from freecg_plugin.training.hosts import HOSTS, build_host

ROOT = Path(__file__).resolve().parents[1]
TINY_HOSTS = [
    {"host": "painn", "args": {"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6}, "freecg": {"groups": 2}},
    {
        "host": "nequip",
        "args": {"num_layers": 2, "l_max": 1, "parity": False, "num_features": 8, "radial_mlp_width": 8},
        "freecg": {"edges_per_group": 4},
    },
]


def tiny_plan(output):
    return {
        "data": {"dataset": "rmd17/ethanol", "n_train": 8, "n_val": 4, "n_test": 6},
        "optim": {"lr": 1e-3, "batch_size": 4, "max_epochs": 2, "warmup_steps": 2},
        "cutoff": 4.0,
        "seeds": [3],
        "budgets": ["epochs", "time"],
        "hosts": TINY_HOSTS,
        "output": str(output),
    }


def compare(config_path):
    return subprocess.run(
        [sys.executable, "-m", "freecg_plugin.cli", "compare", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_every_host_builds_bare_and_with_freecg_and_gives_forces(host):
    from freecg_plugin.atomistic import Structure, collate, evaluate

    args = {
        "visnet": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 8, "num_rbf": 4},
        "painn": TINY_HOSTS[0]["args"],
        "so3net": {"n_atom_basis": 8, "n_interactions": 1, "lmax": 1, "n_rbf": 4},
        "nequip": TINY_HOSTS[1]["args"],
        "allegro": {
            "l_max": 1,
            "parity": False,
            "radial_chemical_embed": {"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 4},
            "radial_chemical_embed_dim": 4,
            "num_layers": 1,
            "num_scalar_features": 8,
            "num_tensor_features": 4,
            "allegro_mlp_hidden_layers_width": 8,
            "scalar_embed_mlp_hidden_layers_width": 8,
            "readout_mlp_hidden_layers_width": 4,
        },
    }[host]
    freecg = {"groups": 2} if host in ("visnet", "painn", "so3net") else {"edges_per_group": 2}
    graph = collate([Structure(torch.tensor([8, 1, 1, 6]), torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))], 4.0)
    sizes = []
    for settings in (None, freecg):
        model = build_host(host, args, 4.0, settings, None, [1, 6, 8], energy_mean=-3.0, energy_std=2.0, avg_num_neighbors=3.0, seed=0)
        out = evaluate(model, graph)
        assert out["energy"].shape == (1,) and out["forces"].shape == (4, 3) and torch.isfinite(out["forces"]).all()
        sizes.append(sum(p.numel() for p in model.parameters()))
    assert sizes[1] > sizes[0]  # the FreeCG member really has FreeCG
    assert torch.get_default_dtype() == torch.float32  # nequip's global state did not leak float64


def test_plan_pairs_share_everything_but_the_model(tmp_path):
    config = CompareConfig(
        **tiny_plan(tmp_path),
        ablation={"args": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 8, "num_rbf": 4}, "groups": [2, 8]},
    )
    runs = plan(config)
    by = {(label, variant, r.budget): r for r in runs for label, variant in r.roles}
    for host in ("painn", "nequip"):
        bare, with_freecg, timed = by[(host, "host", "epochs")], by[(host, "host + FreeCG", "epochs")], by[(host, "host", "time")]
        for other in (with_freecg, timed):
            assert other.config["data"] == bare.config["data"] and other.config["model"]["args"] == bare.config["model"]["args"]
        assert bare.config["optim"] == with_freecg.config["optim"]
        assert bare.config["model"]["freecg"] is None and with_freecg.config["model"]["freecg"]
        assert timed.time_of == with_freecg.key and runs.index(timed) > runs.index(with_freecg)
    ablation = [variant for r in runs for label, variant in r.roles if label == "ViSNet ablation"]
    assert ablation == ["ViSNet", "+ group CG (G=2)", "+ shuffle (G=2)", "+ enhancer (G=2)", "+ enhancer (G=8)"]
    # the ablation's bare ViSNet and its full FreeCG (G=2) are the visnet pair's runs, trained once
    config.hosts = [{"host": "visnet", "args": config.ablation["args"], "freecg": {"groups": 2}}]
    shared = [r for r in plan(config) if len(r.roles) == 2]
    assert sorted(r.roles[1][1] for r in shared) == ["+ enhancer (G=2)", "ViSNet"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hosts": [{"host": "schnet"}]}, "hosts\\[0\\].host must be one of"),
        ({"budgets": ["flops"]}, "budgets must be"),
        ({"optim": {"learning_rate": 1}}, "unknown keys"),
        ({"colour": "red"}, "unknown keys \\['colour'\\]"),
        ({"ablation": {"args": {}}}, "ablation needs"),
    ],
)
def test_bad_plans_name_the_problem(change, message, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**tiny_plan(tmp_path), **change}))
    with pytest.raises(ValueError, match=message):
        load_compare_config(path)


def test_presets_load():
    for name in ("quick", "full", "water"):
        config = load_compare_config(preset_path(name))
        assert {h["host"] for h in config.hosts} == set(HOSTS)
    with pytest.raises(ValueError, match="neither a file nor a shipped compare config"):
        preset_path("huge")


def test_tiny_comparison_end_to_end_and_resume(tmp_path):
    output = tmp_path / "out"
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(tiny_plan(output)))
    first = compare(config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for name in ("comparison.md", "comparison.json", "force_mae.png", "learning_curves.png", "plan.json"):
        assert (output / name).is_file() and (output / name).stat().st_size > 0
    result = json.loads((output / "comparison.json").read_text())
    rows = {(r["host"], r["variant"], r["budget"]): r for r in result["rows"]}
    assert len(rows) == 6
    for host in ("painn", "nequip"):
        pair = [rows[(host, "host", "epochs")], rows[(host, "host + FreeCG", "epochs")], rows[(host, "host", "time")]]
        assert len({r["data_fingerprint"] for r in pair}) == 1 and all(r["seeds"] == [3] for r in pair)
        assert pair[1]["parameters"]["mean"] > pair[0]["parameters"]["mean"]
        assert pair[0]["epochs"]["mean"] == 2 and pair[1]["epochs"]["mean"] == 2
        for r in pair:
            assert r["forces_mae"]["mean"] > 0 and r["inference_ms_per_structure"]["mean"] > 0 and r["peak_memory_mb"]["mean"] > 0
        # every run of the pair wrote the same frames and seed into its own results
        stored = [json.loads((output / f / "test_metrics.json").read_text()) for r in pair for f in r["runs"]]
        assert len({(s["data_fingerprint"], s["seed"]) for s in stored}) == 1
    markdown = (output / "comparison.md").read_text()
    assert "| painn | host + FreeCG | equal epochs |" in markdown and "equal time" in markdown

    # resume: a finished plan trains nothing; an interrupted run (no results, a last checkpoint) resumes alone
    runs = json.loads((output / "plan.json").read_text())
    victim = output / "runs" / runs[0]["key"]
    (victim / "test_metrics.json").unlink()
    stamps = {r["key"]: os.path.getmtime(output / "runs" / r["key"] / "test_metrics.json") for r in runs[1:]}
    second = compare(config)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{len(runs)} runs in the plan, {len(runs) - 1} already finished" in second.stdout
    assert (victim / "test_metrics.json").is_file()
    assert (victim / "train.log").read_text().count(" parameters on ") == 2  # the victim ran again, from its checkpoint
    assert stamps == {r["key"]: os.path.getmtime(output / "runs" / r["key"] / "test_metrics.json") for r in runs[1:]}
