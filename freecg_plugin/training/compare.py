"""``freecg compare``: does FreeCG make a host better, and at what cost?

For every host in the plan, the bare host and host + FreeCG are trained by the project's trainer
(:mod:`freecg_plugin.training.run`: one loss, optimiser, warm-up/plateau schedule, EMA and
precision for every host, see :mod:`freecg_plugin.training.hosts`) with everything else equal:
data, split, seed, epochs, batch size, loss weights. Three budgets for the bare host: equal
epochs; equal wall-clock time (it trains for as long as host + FreeCG took, ``optim.max_time_s``);
equal parameters (it is widened to host + FreeCG's parameter count, see
:mod:`~freecg_plugin.training.equal_parameters`, and trained for the same epochs). Every budget
runs over several seeds, and each host gets a verdict per budget (:func:`verdict`). A ViSNet
ablation (+ group CG, + shuffle, + enhancer, and a second group count) can be added.

Each run is a ``freecg train`` subprocess in its own folder (so peak memory is per run). A run is
finished when its ``test_metrics.json`` exists; a new invocation skips finished runs and resumes
an interrupted one from its last checkpoint. Runs with identical configs are run once.
Outputs: ``comparison.md``, ``comparison.json``, ``force_mae.png`` and ``learning_curves.png``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from .config import OptimConfig, TrainConfig, build_dataclass, config_path, read_config
from .equal_parameters import FINE_ARGS, WIDTH_ARGS, Widened, widen_host
from .hosts import HOSTS
from .report import epoch_curves, write_atomic

__all__ = ["CompareConfig", "Run", "load_compare_config", "mean_std", "plan", "preset_path", "report", "run_plan", "train_in_subprocess"]

BUDGETS = ("epochs", "time", "parameters")
BUDGET_NAMES = {"epochs": "equal epochs", "time": "equal time", "parameters": "equal parameters"}
ABLATION_STEPS = {  # the paper's ablation order; the last step is FreeCG with its defaults
    "+ group CG": dict(shuffle=False, enhancer=False),
    "+ shuffle": dict(enhancer=False),
    "+ enhancer": dict(),
}


@dataclass
class CompareConfig:
    """A comparison plan (YAML; unknown keys are rejected by name).

    Attributes:
        hosts: one entry per host: ``{host, args, freecg, freecg_layers, label}`` (``host`` one of
            ``visnet, painn, so3net, nequip, allegro``; ``args`` its arguments; ``freecg`` the
            settings of the FreeCG member; ``label`` defaults to the host name).
        data: :class:`~freecg_plugin.training.config.DataConfig` values, shared by every run.
        optim: :class:`~freecg_plugin.training.config.OptimConfig` values, shared by every run
            (``max_epochs`` is the equal-epoch budget; ``seed`` is replaced by each of ``seeds``).
        cutoff: graph cutoff in Å for every host.
        seeds: training seeds; results are reported as mean ± std over them (at least two for
            a verdict).
        budgets: any of ``epochs``, ``time`` (the bare host gets host + FreeCG's training time)
            and ``parameters`` (the bare host widened to host + FreeCG's parameter count).
        ablation: ``{args, groups: [G1, G2]}`` for the ViSNet ablation (``null``: none).
        output: folder for the runs and the report.
        accelerator: Lightning accelerator for every run.
        task: ``potential`` (energies and forces; compared on the test force MAE) or
            ``properties`` (compared on each target's test MAE).
        targets: ``task: properties``: the property targets (e.g. ``[mu, U0, gap, r2]``).
    """

    hosts: List[Dict[str, Any]]
    data: Dict[str, Any] = field(default_factory=dict)
    optim: Dict[str, Any] = field(default_factory=dict)
    cutoff: float = 5.0
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    budgets: List[str] = field(default_factory=lambda: list(BUDGETS))
    ablation: Optional[Dict[str, Any]] = None
    output: str = "runs/compare"
    accelerator: str = "cpu"
    task: str = "potential"
    targets: Optional[List[str]] = None

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("compare: `hosts` is empty")
        for i, entry in enumerate(self.hosts):
            unknown = sorted(set(entry) - {"host", "args", "freecg", "freecg_layers", "label"})
            if unknown:
                raise ValueError(f"compare: hosts[{i}] has unknown keys {unknown}")
            if entry.get("host") not in HOSTS:
                raise ValueError(f"compare: hosts[{i}].host must be one of {sorted(HOSTS)}, got {entry.get('host')!r}")
        bad = sorted(set(self.budgets) - set(BUDGETS))
        if bad or not self.budgets:
            raise ValueError(f"compare: budgets must be a non-empty subset of {list(BUDGETS)}, got {self.budgets}")
        if not self.seeds:
            raise ValueError("compare: `seeds` is empty")
        task = {"task": self.task, "targets": self.targets} if self.task != "potential" else {}
        for entry in self.hosts:  # checks the shared sections, and each host against the task
            TrainConfig.from_dict({"data": self.data, "optim": self.optim, "model": {"host": entry["host"]}, **task}, "compare")
        if self.task == "properties" and ("parameters" in self.budgets or self.ablation is not None):
            raise ValueError("compare: task properties compares at equal epochs and equal time (no parameters budget, no ablation)")
        if self.ablation is not None:
            unknown = sorted(set(self.ablation) - {"args", "groups"})
            if unknown or len(self.ablation.get("groups", [])) != 2:
                raise ValueError("compare: ablation needs `args` (ViSNet arguments) and `groups: [G1, G2]`")


def load_compare_config(path, overrides: Sequence[str] = ()) -> CompareConfig:
    """Read a comparison plan (its data paths relative to the file), apply ``key=value``
    overrides; errors name the file and the problem."""
    values = read_config(path, overrides, "comparison config")
    if "hosts" not in values:
        raise ValueError(f"{path}: `hosts` is required")
    try:
        return build_dataclass(CompareConfig, values, "compare")
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def preset_path(name: str) -> Path:
    """The shipped plan ``name`` (``quick``, ``full``, ``water``)."""
    return config_path(name, "compare")


@dataclass
class Run:
    """One training run of the plan, with every role it plays in the report.

    Attributes:
        key: a hash of the run's settings (its folder is ``runs/<key>``).
        roles: ``[label, variant]`` pairs (e.g. ``["visnet", "host"]`` and
            ``["ViSNet ablation", "ViSNet"]`` when the two are the same run).
        budget: ``epochs``, ``time`` or ``parameters``.
        time_of: the key of the run whose training time is this run's budget (equal-time runs).
    """

    key: str
    roles: List[List[str]]
    budget: str
    seed: int
    config: Dict[str, Any]
    time_of: Optional[str] = None

    @property
    def folder(self) -> str:
        return f"runs/{self.key}"

    @property
    def name(self) -> str:
        label, variant = self.roles[0]
        return f"{label}: {variant} ({self.budget}, seed {self.seed})"


def _key(config: Dict[str, Any], time_of: Optional[str]) -> str:
    text = json.dumps({"config": config, "time_of": time_of}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan(config: CompareConfig, widened: Optional[Dict[str, Widened]] = None) -> List[Run]:
    """Every run the comparison needs, in an order where each equal-time run follows its reference.
    Runs with identical settings (e.g. the ablation's bare ViSNet and the visnet pair's host) are
    run once and play several roles. ``widened``: the equal-parameter hosts by label
    (:func:`widen_hosts`; computed here when the plan has that budget and none are given)."""
    if "parameters" in config.budgets and widened is None:
        widened = widen_hosts(config)
    runs: Dict[str, Run] = {}

    def add(label, variant, budget, seed, host, args, freecg, layers=None, time_of=None) -> str:
        optim = dict(config.optim, seed=seed)
        if budget == "time":
            optim["max_epochs"] = int(optim.get("max_epochs", OptimConfig.max_epochs)) * 100
        train = {
            "data": dict(config.data),
            "model": {
                "host": host,
                "args": dict(args or {}),
                "cutoff": config.cutoff,
                "freecg": copy.deepcopy(freecg),
                "freecg_layers": layers,
            },
            "optim": optim,
            "accelerator": config.accelerator,
        }
        if config.task != "potential":
            train.update(task=config.task, targets=list(config.targets))
        key = _key(train, time_of)
        if key not in runs:
            runs[key] = Run(key, [], budget, seed, train, time_of)
        runs[key].roles.append([label, variant])
        return key

    for seed in config.seeds:
        for entry in config.hosts:
            label = _label(entry)
            host, args = entry["host"], entry.get("args", {})
            with_freecg = add(
                label, "host + FreeCG", "epochs", seed, host, args, dict(entry.get("freecg") or {}), entry.get("freecg_layers")
            )
            if "epochs" in config.budgets:
                add(label, "host", "epochs", seed, host, args, None)
            if "time" in config.budgets:
                add(label, "host", "time", seed, host, args, None, time_of=with_freecg)
            if "parameters" in config.budgets:
                add(label, "host", "parameters", seed, host, widened[label].args, None)
        if config.ablation is not None:
            args = config.ablation["args"]
            add("ViSNet ablation", "ViSNet", "epochs", seed, "visnet", args, None)
            first, second = config.ablation["groups"]
            for step, switches in ABLATION_STEPS.items():
                add("ViSNet ablation", f"{step} (G={first})", "epochs", seed, "visnet", args, dict(switches, groups=first))
            add(
                "ViSNet ablation",
                f"+ enhancer (G={second})",
                "epochs",
                seed,
                "visnet",
                args,
                dict(ABLATION_STEPS["+ enhancer"], groups=second),
            )
    return list(runs.values())


def _label(entry: Dict[str, Any]) -> str:
    return entry.get("label", entry["host"])


def widen_hosts(config: CompareConfig) -> Dict[str, Widened]:
    """Per host label, the bare host widened to host + FreeCG's parameter count on the plan's data.

    Raises:
        ValueError: when a widened host misses the target by more than 5 %.
    """
    from .data import load_data

    train, _, _ = load_data(TrainConfig.from_dict({"data": config.data}, "compare").data)
    out = {}
    for entry in config.hosts:
        label = _label(entry)
        wide = widen_host(
            entry["host"], entry.get("args", {}), config.cutoff, dict(entry.get("freecg") or {}), entry.get("freecg_layers"), train.elements
        )
        if abs(wide.mismatch) > 0.05:
            raise ValueError(f"compare: {label} widened to {wide.parameters} parameters, {100 * wide.mismatch:+.1f} % off {wide.target}")
        out[label] = wide
    return out


def _width(run: Run) -> str:
    """``hidden_channels=36, num_rbf=40``: the width arguments of a widened run."""
    model = run.config["model"]
    keys = (WIDTH_ARGS[model["host"]], FINE_ARGS[model["host"]])
    return ", ".join(f"{key}={model['args'][key]}" for key in keys if key in model["args"])


def _results(output: Path, run: Run) -> Optional[Dict[str, Any]]:
    path = output / run.folder / "test_metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def train_in_subprocess(config: Dict[str, Any], folder: Path, name: str) -> None:
    """``freecg train`` of the config mapping ``config`` in ``folder`` (its config.yaml and
    train.log), resuming from the folder's last checkpoint when there is one.

    Raises:
        RuntimeError: the training failed (naming ``name`` and its log).
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(config, output=str(folder))
    write_atomic(folder / "config.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False)))
    command = [sys.executable, "-m", "freecg_plugin.cli", "train", "--config", str(folder / "config.yaml")]
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        command += ["--resume", str(last)]  # an interrupted run goes on from its last epoch
    with open(folder / "train.log", "a") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"run {name} failed (exit {code}); see {folder / 'train.log'}")


def _execute(output: Path, run: Run, budget_seconds: Optional[float]) -> None:
    config = copy.deepcopy(run.config)
    if budget_seconds is not None:
        config["optim"]["max_time_s"] = float(budget_seconds)
    train_in_subprocess(config, output / run.folder, run.name)


def run_plan(config: CompareConfig, progress: bool = True) -> Dict[str, Any]:
    """Run (or finish) every run of the plan, then write and return the report."""
    from tqdm import tqdm

    output = Path(config.output)
    runs = plan(config)
    for run in runs:
        if run.budget == "parameters" and run.seed == config.seeds[0]:
            label = run.roles[0][0]
            print(f"compare: {label} at equal parameters: {_width(run)}", flush=True)
    write_atomic(output / "plan.json", lambda tmp: Path(tmp).write_text(json.dumps([asdict(r) for r in runs], indent=1)))
    todo = [r for r in runs if _results(output, r) is None]
    print(f"compare: {len(runs)} runs in the plan, {len(runs) - len(todo)} already finished -> {output}", flush=True)
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), disable=not progress, unit="run", file=sys.stdout, dynamic_ncols=True)
    by_key = {r.key: r for r in runs}
    for run in todo:
        bar.set_description(run.name)
        budget = None
        if run.time_of is not None:
            reference = _results(output, by_key[run.time_of])
            budget = reference["train_seconds"]
        start = time.perf_counter()
        _execute(output, run, budget)
        bar.update(1)
        bar.write(f"  done: {run.name} in {time.perf_counter() - start:.0f} s")
    bar.close()
    return report(config, runs)


def mean_std(values: List[float]) -> Dict[str, Any]:
    """Mean, sample standard deviation, count and the values themselves."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(values), "values": list(values)}


COLUMNS = (
    ("forces_mae", "force MAE"),
    ("forces_rmse", "force RMSE"),
    ("energy_mae", "energy MAE"),
    ("energy_rmse", "energy RMSE"),
    ("parameters", "parameters"),
    ("seconds_per_epoch", "s / epoch"),
    ("epochs", "epochs"),
    ("inference_ms_per_structure", "ms / structure"),
    ("peak_memory_mb", "peak memory (MB)"),
)


def compared_metrics(config: CompareConfig) -> List[str]:
    """The test errors a plan compares: ``forces_mae``, or each target's ``<target>_mae``."""
    return ["forces_mae"] if config.task == "potential" else [f"{t}_mae" for t in config.targets]


def report(config: CompareConfig, runs: Optional[List[Run]] = None) -> Dict[str, Any]:
    """Collect finished runs into ``comparison.json``/``.md`` and the PNG plots; returns the JSON.

    Raises:
        RuntimeError: if the members of a pair did not see the same frames or seed.
    """
    output = Path(config.output)
    runs = runs if runs is not None else plan(config)
    metrics = compared_metrics(config)
    by_key = {run.key: run for run in runs}
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    unit = None
    for run in runs:
        result = _results(output, run)
        if result is None:
            continue
        unit = result.get("unit", unit)
        for label, variant in run.roles:
            groups.setdefault((label, variant, run.budget), []).append({"seed": run.seed, "folder": run.folder, "key": run.key, **result})
    fingerprints: Dict[tuple, set] = {}
    for (label, _, _), members in groups.items():
        for m in members:
            fingerprints.setdefault((label, m["seed"]), set()).add(m.get("data_fingerprint"))
    mixed = {k: v for k, v in fingerprints.items() if len(v) > 1}
    if mixed:
        raise RuntimeError(f"compare: runs of one host and seed saw different data: {mixed}")
    rows = []
    for (label, variant, budget), members in groups.items():
        row = {
            "host": label,
            "variant": variant,
            "budget": budget,
            "width": _width(by_key[members[0]["key"]]) if budget == "parameters" else None,
            "seeds": [m["seed"] for m in members],
            "data_fingerprint": members[0].get("data_fingerprint"),
            "runs": [m["folder"] for m in members],
        }
        for key in metrics + [key for key, _ in COLUMNS if key not in metrics]:
            if all(key in m for m in members):
                row[key] = mean_std([float(m[key]) for m in members])
        rows.append(row)
    verdicts = _verdicts(rows, metrics)
    result = {
        "unit": unit,
        "metrics": metrics,
        "rows": rows,
        "verdicts": verdicts,
        "plan": {"seeds": config.seeds, "budgets": config.budgets, "data": config.data, "optim": config.optim, "cutoff": config.cutoff},
    }
    write_atomic(output / "comparison.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
    write_atomic(output / "comparison.md", lambda tmp: Path(tmp).write_text(markdown(result)))
    _plot_errors(rows, metrics, unit, output / ("force_mae.png" if metrics == ["forces_mae"] else "target_mae.png"))
    _plot_learning_curves(output, runs, output / "learning_curves.png", unit, "val_forces_mae" if metrics == ["forces_mae"] else "val_loss")
    print(markdown(result), flush=True)
    return result


VERDICT_SPREAD = 2.0
"""A difference is clear when it exceeds this many standard errors of the difference."""


def verdict(freecg: Sequence[float], host: Sequence[float]) -> str:
    """``helps``, ``hurts`` or ``no clear difference``, from per-seed test errors (lower is better).

    The rule: with means ``m`` and sample standard deviations ``s`` over ``n`` seeds, the
    difference ``d = m_FreeCG - m_host`` is clear when ``|d| > 2 * sqrt(s_FreeCG^2 / n_FreeCG +
    s_host^2 / n_host)`` (two standard errors of the difference); then FreeCG ``helps`` if ``d < 0``
    and ``hurts`` if ``d > 0``. With fewer than two seeds on either side the spread is unknown:
    ``undecided (one seed)``.
    """
    if len(freecg) < 2 or len(host) < 2:
        return "undecided (one seed)"
    a, b = mean_std([float(v) for v in freecg]), mean_std([float(v) for v in host])
    difference = a["mean"] - b["mean"]
    error = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    if abs(difference) <= VERDICT_SPREAD * error:
        return "no clear difference"
    return "helps" if difference < 0 else "hurts"


def _verdicts(rows: List[Dict[str, Any]], metrics: Sequence[str] = ("forces_mae",)) -> List[Dict[str, Any]]:
    """Per host, budget and compared metric: FreeCG's change of the test error against the bare
    host's, and the verdict (``freecg`` / ``host``: mean ± std over seeds)."""
    index = {(r["host"], r["variant"], r["budget"]): r for r in rows}
    out = []
    for (host, variant, _), row in index.items():
        if variant != "host + FreeCG":
            continue
        for budget in BUDGETS:
            bare = index.get((host, "host", budget))
            if bare is None:
                continue
            for metric in metrics:
                ours, theirs = dict(zip(row["seeds"], row[metric]["values"])), dict(zip(bare["seeds"], bare[metric]["values"]))
                shared = sorted(set(ours) & set(theirs))
                out.append(
                    {
                        "host": host,
                        "budget": budget,
                        "metric": metric,
                        "freecg": row[metric],
                        "host_error": bare[metric],
                        "change_percent": 100 * (row[metric]["mean"] / bare[metric]["mean"] - 1),
                        "verdict": verdict(row[metric]["values"], bare[metric]["values"]),
                        "seeds_better": [sum(ours[seed] < theirs[seed] for seed in shared), len(shared)],
                        "parameters": [row["parameters"]["mean"], bare["parameters"]["mean"]],
                        "cost_per_epoch": row["seconds_per_epoch"]["mean"] / bare["seconds_per_epoch"]["mean"],
                    }
                )
    return out


def _fmt(stat: Dict[str, float], digits: int = 3) -> str:
    if stat["n"] > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def _metric_name(metric: str) -> str:
    return "force MAE" if metric == "forces_mae" else f"{metric[: -len('_mae')]} MAE"


def markdown(result: Dict[str, Any]) -> str:
    unit = result["unit"] or "energy unit"
    metrics = result.get("metrics", ["forces_mae"])
    if metrics == ["forces_mae"]:
        lines = [f"Test errors in {unit} (forces per Å); mean ± std over seeds where more than one.", ""]
        columns = list(COLUMNS)
    else:
        lines = ["Test MAE per target in its unit (meV for energies, D, bohr^3, bohr^2, cal/mol/K); mean ± std over seeds.", ""]
        columns = [(m, _metric_name(m)) for m in metrics] + [c for c in COLUMNS if not c[0].startswith(("forces", "energy"))]
    columns = [(key, name) for key, name in columns if any(key in r for r in result["rows"])]  # what was measured
    header = ["host", "variant", "budget", *[name for _, name in columns]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    pair_rank = {("host", "epochs"): 0, ("host + FreeCG", "epochs"): 1, ("host", "time"): 2, ("host", "parameters"): 3}
    first = {}
    for i, r in enumerate(result["rows"]):  # rows come in plan order
        first.setdefault(r["host"], i)
    steps = list(ABLATION_STEPS)

    def order(item):
        i, r = item
        step = r["variant"].split(" (")[0]
        rank = pair_rank.get((r["variant"], r["budget"]), 4 + (steps.index(step) if step in steps else -1))
        return first[r["host"]], rank, i

    for _, r in sorted(enumerate(result["rows"]), key=order):
        variant = r["variant"] + (f" ({r['width']})" if r.get("width") else "")
        cells = [r["host"], variant, BUDGET_NAMES[r["budget"]]]
        for key, _ in columns:
            digits = (
                0
                if key in ("parameters", "epochs", "peak_memory_mb")
                else (2 if key in ("seconds_per_epoch", "inference_ms_per_structure") else 3)
            )
            cells.append(_fmt(r[key], digits) if key in r else "")
        lines.append("| " + " | ".join(cells) + " |")
    if result["verdicts"]:
        lines += [
            "",
            f"Verdict: FreeCG's test error against the bare host's; a difference is clear beyond {VERDICT_SPREAD:g} standard errors "
            "of the difference over seeds (`freecg_plugin.training.compare.verdict`).",
            "",
            "| host | budget | error | host + FreeCG | host | change | verdict | seeds better | parameters (FreeCG / host) | cost per epoch |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in result["verdicts"]:
            lines.append(
                f"| {v['host']} | {BUDGET_NAMES[v['budget']]} | {_metric_name(v['metric'])} | {_fmt(v['freecg'])} | {_fmt(v['host_error'])} | "
                f"{v['change_percent']:+.1f} % | {v['verdict']} | {v['seeds_better'][0]}/{v['seeds_better'][1]} | "
                f"{v['parameters'][0]:.0f} / {v['parameters'][1]:.0f} | "
                f"{v['cost_per_epoch']:.2f}x |"
            )
    return "\n".join(lines) + "\n"


BARS = (
    ("host", "epochs", "host, equal epochs"),
    ("host", "time", "host, equal time"),
    ("host", "parameters", "host, equal parameters"),
    ("host + FreeCG", "epochs", "host + FreeCG"),
)


def _plot_errors(rows: List[Dict[str, Any]], metrics: Sequence[str], unit: Optional[str], path: Path) -> None:
    """Per compared metric, grouped bars per host (mean ± std over seeds); each host shows the
    bars it has, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hosts = [h for h in dict.fromkeys(r["host"] for r in rows) if any(r["host"] == h and r["variant"] == "host + FreeCG" for r in rows)]
    index = {(r["host"], r["variant"], r["budget"]): r for r in rows}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5, 1.9 * len(hosts)) * len(metrics), 3.8), squeeze=False)
    width = 0.8 / len(BARS)
    for ax, metric in zip(axes[0], metrics):
        labelled = set()
        for h, host in enumerate(hosts):
            present = [
                (b, index[(host, variant, budget)]) for b, (variant, budget, _) in enumerate(BARS) if (host, variant, budget) in index
            ]
            for slot, (b, row) in enumerate(present):
                x = h + (slot - (len(present) - 1) / 2) * width
                name = BARS[b][2]
                ax.bar(
                    x, row[metric]["mean"], width, yerr=row[metric]["std"], capsize=3, color=colors[b % len(colors)],
                    label=None if name in labelled else name,
                )  # fmt: skip
                labelled.add(name)
        ax.set_xticks(range(len(hosts)), hosts)
        ax.set_ylabel(f"test force MAE ({unit or 'energy unit'}/Å)" if metric == "forces_mae" else f"test {_metric_name(metric)}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def _plot_learning_curves(output: Path, runs: List[Run], path: Path, unit: Optional[str], key: str = "val_forces_mae") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({label for r in runs for label, _ in r.roles})
    fig, axes = plt.subplots(1, len(labels), figsize=(3.4 * len(labels), 3.0), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for run in runs:
            variants = [variant for role_label, variant in run.roles if role_label == label]
            if not variants or run.budget != "epochs":
                continue
            curve = epoch_curves(output / run.folder / "logs", (key,)).get(key)
            if curve:
                ax.plot(list(curve), list(curve.values()), label=f"{variants[0]} (seed {run.seed})")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel(
        f"validation force MAE ({unit or 'energy unit'}/Å)" if key == "val_forces_mae" else "validation loss (standardised)"
    )
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
