"""``freecg compare`` end to end on a tiny plan, the host builders, and the plan's bookkeeping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers.tiny import MAIN_HOSTS

from freecg_plugin.compare import CompareConfig, load_compare_config, plan, preset_path, verdict, widen_hosts
from freecg_plugin.compare.equal_parameters import FINE_ARGS, WIDTH_ARGS, parameter_count, widen_host
from freecg_plugin.compare.plan import FIXED_BUDGETS
from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host

ROOT = Path(__file__).resolve().parents[1]
TINY_HOSTS = [
    {"host": "painn", "args": {"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6}, "freecg": {"groups": 2}},
    {
        "host": "nequip",
        "args": {"num_layers": 2, "l_max": 1, "parity": False, "num_features": 8, "radial_mlp_width": 8},
        "freecg": {"edges_per_group": 4},
    },
]


def tiny_plan(output, hosts=TINY_HOSTS):
    return {
        "data": {"dataset": "rmd17/ethanol", "n_train": 8, "n_val": 4, "n_test": 6},
        "optim": {"lr": 1e-3, "batch_size": 4, "max_epochs": 2, "warmup_steps": 2},
        "cutoff": 4.0,
        "seeds": [3, 4, 5],
        "budgets": ["epochs", "time", "parameters"],
        "hosts": hosts,
        "output": str(output),
    }


def compare(config_path):
    return subprocess.run(
        [sys.executable, "-m", "freecg_plugin.cli", "compare", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )


TINY_ARGS = {
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
}


def tiny_freecg(host):
    return {"groups": 2} if host in ("visnet", "painn", "so3net") else {"edges_per_group": 2}


@pytest.mark.slow
@pytest.mark.parametrize("host", MAIN_HOSTS)
def test_every_host_builds_bare_and_with_freecg_and_gives_forces(host):
    from freecg_plugin.atomistic import Structure, collate, evaluate

    graph = collate([Structure(torch.tensor([8, 1, 1, 6]), torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))], 4.0)
    sizes = []
    for settings in (None, tiny_freecg(host)):
        model = build_host(ModelConfig(host, TINY_ARGS[host], 4.0, settings), HostStatistics([1, 6, 8], -3.0, 2.0, 3.0, seed=0))
        out = evaluate(model, graph)
        assert out["energy"].shape == (1,) and out["forces"].shape == (4, 3) and torch.isfinite(out["forces"]).all()
        sizes.append(sum(p.numel() for p in model.parameters()))
    assert sizes[1] > sizes[0]  # the FreeCG member really has FreeCG
    assert torch.get_default_dtype() == torch.float32  # nequip's global state did not leak float64


@pytest.mark.parametrize("host", MAIN_HOSTS)
def test_widened_bare_host_has_host_plus_freecg_parameter_count(host):
    args, freecg = TINY_ARGS[host], tiny_freecg(host)
    wide = widen_host(host, args, 4.0, freecg, None, [1, 6, 8])
    target = parameter_count(host, args, 4.0, freecg, None, [1, 6, 8])
    assert wide.target == target and wide.parameters == parameter_count(host, wide.args, 4.0, None, None, [1, 6, 8])
    assert abs(wide.parameters / target - 1) <= 0.05, (wide.parameters, target)
    changed = {k for k in wide.args if wide.args[k] != args.get(k)}
    assert changed and changed <= {WIDTH_ARGS[host], FINE_ARGS[host]}
    assert all(wide.args[k] >= args.get(k, 0) for k in changed)


@pytest.mark.slow
def test_quick_plan_widens_every_host_to_within_five_percent():
    config = load_compare_config(preset_path("quick"))
    widened = widen_hosts(config)
    assert sorted(widened) == MAIN_HOSTS
    for label, wide in widened.items():
        assert abs(wide.mismatch) <= 0.05 and wide.parameters > 0, (label, wide)
    runs = [r for r in plan(config, widened) if r.budget == "parameters"]
    assert len(runs) == len(MAIN_HOSTS) * len(config.seeds)
    assert all(r.config["model"]["args"] == widened[r.roles[0][0]].args for r in runs)


@pytest.mark.parametrize(
    "freecg_values, host_values, expected",
    [
        ([1.00, 1.02, 0.98], [1.50, 1.55, 1.45], "helps"),  # 33 % lower, spread 2 %
        ([1.50, 1.55, 1.45], [1.00, 1.02, 0.98], "hurts"),
        ([0.90, 1.20, 0.80], [1.00, 1.30, 0.85], "no clear difference"),  # 7 % lower, spread 20 %
        ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "no clear difference"),
        ([0.5], [1.0], "undecided (one seed)"),
    ],
)
def test_verdict_rule(freecg_values, host_values, expected):
    assert verdict(freecg_values, host_values) == expected


def test_verdict_threshold_is_two_standard_errors():
    # host: mean 1, sample std s over 4 seeds -> standard error s / 2; FreeCG: no spread. Clear beyond 2 * s / 2.
    host = [0.9, 1.1, 0.9, 1.1]
    host_std = torch.tensor(host).std().item()
    edge = 2 * host_std / 2
    assert verdict([1 - 0.99 * edge] * 4, host) == "no clear difference"
    assert verdict([1 - 1.01 * edge] * 4, host) == "helps"
    assert verdict([1 + 1.01 * edge] * 4, host) == "hurts"


def test_plan_pairs_share_everything_but_the_model(tmp_path):
    config = CompareConfig(
        **tiny_plan(tmp_path),
        ablation={"args": {"lmax": 2, "num_heads": 2, "num_layers": 1, "hidden_channels": 8, "num_rbf": 4}, "groups": [2, 8]},
    )
    runs = plan(config)
    by = {(label, variant, r.budget): r for r in runs for label, variant in r.roles}
    assert {r.seed for r in runs} == {3, 4, 5}
    for host in ("painn", "nequip"):
        bare, with_freecg, timed = by[(host, "host", "epochs")], by[(host, "host + FreeCG", "epochs")], by[(host, "host", "time")]
        wide = by[(host, "host", "parameters")]
        for other in (with_freecg, timed):
            assert other.config["data"] == bare.config["data"] and other.config["model"]["args"] == bare.config["model"]["args"]
        assert bare.config["optim"] == with_freecg.config["optim"] == wide.config["optim"] and wide.config["data"] == bare.config["data"]
        key = WIDTH_ARGS[host]
        assert wide.config["model"]["args"][key] > bare.config["model"]["args"][key] and wide.config["model"]["freecg"] is None
        assert bare.config["model"]["freecg"] is None and with_freecg.config["model"]["freecg"]
        assert timed.time_of == with_freecg.key and runs.index(timed) > runs.index(with_freecg)
    ablation = [variant for r in runs if r.seed == 3 for label, variant in r.roles if label == "ViSNet ablation"]
    assert ablation == ["ViSNet", "+ group CG (G=2)", "+ shuffle (G=2)", "+ enhancer (G=2)", "+ enhancer (G=8)"]
    # the ablation's bare ViSNet and its full FreeCG (G=2) are the visnet pair's runs, trained once
    config.hosts = [{"host": "visnet", "args": config.ablation["args"], "freecg": {"groups": 2}}]
    shared = [r for r in plan(config) if len(r.roles) == 2 and r.seed == 3]
    assert sorted(r.roles[1][1] for r in shared) == ["+ enhancer (G=2)", "ViSNet"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hosts": [{"host": "schnet"}]}, "hosts\\[0\\].host must be one of"),
        ({"budgets": ["flops"]}, "budgets must be"),
        ({"optim": {"learning_rate": 1}}, "unknown keys"),
        ({"colour": "red"}, "unknown keys \\['colour'\\]"),
        ({"ablation": {"args": {}}}, "ablation needs"),
        ({"task": "properties", "targets": ["mu"], "hosts": TINY_HOSTS[:1], "budgets": ["epochs", "parameters"]}, "no parameters budget"),
        ({"task": "properties", "targets": ["dipole"], "hosts": TINY_HOSTS[:1]}, "unknown target"),
        ({"task": "properties", "targets": ["mu"], "hosts": TINY_HOSTS[1:]}, "model.host must be one of"),
    ],
)
def test_bad_plans_name_the_problem(change, message, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**tiny_plan(tmp_path), **change}))
    with pytest.raises(ValueError, match=message):
        load_compare_config(path)


def test_presets_load():
    for name in ("quick", "mid", "full", "water"):
        config = load_compare_config(preset_path(name))
        assert sorted({h["host"] for h in config.hosts}) == MAIN_HOSTS  # MACE's plan runs in its own environment
        assert len(config.seeds) >= 3 and sorted(config.budgets) == sorted(FIXED_BUDGETS)
    for name in ("qm9", "qm9_full"):
        config = load_compare_config(preset_path(name))
        assert config.task == "properties" and {"mu", "U0", "gap", "r2"} <= set(config.targets)
        assert {h["host"] for h in config.hosts} == {"visnet", "painn"} and config.budgets == ["epochs", "time"]
    mace = load_compare_config(preset_path("mace_quick"))
    assert [h["host"] for h in mace.hosts] == ["mace"] and sorted(mace.budgets) == sorted(FIXED_BUDGETS) and len(mace.seeds) >= 3
    screening = load_compare_config(preset_path("mace_variants"))
    assert {h["host"] for h in screening.hosts} == {"mace"} and screening.budgets == ["curve"]
    assert len({h["label"] for h in screening.hosts}) == len(screening.hosts) >= 3
    curves = load_compare_config(preset_path("curves"))
    assert {"painn", "nequip", "visnet"} <= {h["host"] for h in curves.hosts} and curves.budgets == ["curve"] and len(curves.seeds) >= 3
    with pytest.raises(ValueError, match="neither a file nor a shipped compare config"):
        preset_path("huge")


@pytest.mark.slow
def test_tiny_comparison_end_to_end_and_resume(tmp_path):
    """One host, three seeds, the three budgets: mean ± std, a verdict per budget, the plots."""
    output = tmp_path / "out"
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(tiny_plan(output, TINY_HOSTS[:1])))
    first = compare(config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for name in ("comparison.md", "comparison.json", "force_mae.png", "learning_curves.png", "plan.json"):
        assert (output / name).is_file() and (output / name).stat().st_size > 0
    assert "compare: painn at equal parameters: n_atom_basis=" in first.stdout
    result = json.loads((output / "comparison.json").read_text())
    rows = {(r["host"], r["variant"], r["budget"]): r for r in result["rows"]}
    assert len(rows) == 4
    pair = [rows[("painn", "host", "epochs")], rows[("painn", "host + FreeCG", "epochs")], rows[("painn", "host", "time")]]
    wide = rows[("painn", "host", "parameters")]
    assert len({r["data_fingerprint"] for r in [*pair, wide]}) == 1 and all(sorted(r["seeds"]) == [3, 4, 5] for r in [*pair, wide])
    assert pair[1]["parameters"]["mean"] > pair[0]["parameters"]["mean"]
    assert (
        abs(wide["parameters"]["mean"] / pair[1]["parameters"]["mean"] - 1) <= 0.05
        and wide["width"].startswith("n_atom_basis=")
        and "n_rbf=" in wide["width"]
    )
    assert pair[0]["epochs"]["mean"] == 2 and pair[1]["epochs"]["mean"] == 2 and wide["epochs"]["mean"] == 2
    for r in [*pair, wide]:
        assert r["forces_mae"]["n"] == 3 and r["forces_mae"]["std"] > 0 and len(r["forces_mae"]["values"]) == 3
        assert r["forces_mae"]["mean"] > 0 and r["inference_ms_per_structure"]["mean"] > 0 and r["peak_memory_mb"]["mean"] > 0
    # every run of the pair wrote the same frames into its own results, one seed per run
    stored = [json.loads((output / f / "test_metrics.json").read_text()) for r in pair for f in r["runs"]]
    assert len({s["data_fingerprint"] for s in stored}) == 1 and sorted({s["seed"] for s in stored}) == [3, 4, 5]
    verdicts = {v["budget"]: v for v in result["verdicts"]}
    assert sorted(verdicts) == ["epochs", "parameters", "time"]
    for budget, v in verdicts.items():
        host_row = rows[("painn", "host", budget)]
        assert v["verdict"] == verdict(pair[1]["forces_mae"]["values"], host_row["forces_mae"]["values"])
        assert v["change_percent"] == pytest.approx(100 * (pair[1]["forces_mae"]["mean"] / host_row["forces_mae"]["mean"] - 1))
        better = sum(f < h for f, h in zip(pair[1]["forces_mae"]["values"], host_row["forces_mae"]["values"]))
        assert pair[1]["seeds"] == host_row["seeds"] and v["seeds_better"] == [better, 3]
    markdown = (output / "comparison.md").read_text()
    assert "| painn | host + FreeCG | equal epochs |" in markdown and "equal time" in markdown and "equal parameters" in markdown
    assert " ± " in markdown and verdicts["epochs"]["verdict"] in markdown

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


@pytest.mark.slow
def test_tiny_property_comparison_reports_every_target(tmp_path):
    """task: properties: one host, two seeds, equal epochs and equal time, a verdict per target."""
    output = tmp_path / "out"
    plan = {
        **tiny_plan(output, TINY_HOSTS[:1]),
        "task": "properties",
        "targets": ["mu", "gap"],
        "data": {"dataset": "qm9/subset10k", "n_train": 32, "n_val": 8, "n_test": 16},
        "seeds": [1, 2],
        "budgets": ["epochs", "time"],
        "optim": {"lr": 1e-3, "batch_size": 16, "max_epochs": 2, "warmup_steps": 2},
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    result = compare(tmp_path / "plan.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((output / "comparison.json").read_text())
    assert report["metrics"] == ["mu_mae", "gap_mae"]
    rows = {(r["host"], r["variant"], r["budget"]): r for r in report["rows"]}
    assert set(rows) == {("painn", "host", "epochs"), ("painn", "host + FreeCG", "epochs"), ("painn", "host", "time")}
    assert len({r["data_fingerprint"] for r in rows.values()}) == 1
    for r in rows.values():
        assert r["mu_mae"]["n"] == 2 and r["mu_mae"]["mean"] > 0 and r["gap_mae"]["mean"] > 0
    verdicts = {(v["budget"], v["metric"]) for v in report["verdicts"]}
    assert verdicts == {(b, m) for b in ("epochs", "time") for m in ("mu_mae", "gap_mae")}
    markdown = (output / "comparison.md").read_text()
    assert "| painn | host + FreeCG | equal epochs |" in markdown and "| mu MAE |" in markdown and "| gap MAE |" in markdown
    assert (output / "target_mae.png").stat().st_size > 0 and (output / "learning_curves.png").stat().st_size > 0
