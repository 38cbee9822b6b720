"""``freecg md-compare``: the bare host and host + FreeCG through one MD protocol, several seeds.

A plan names systems; each system has an MD protocol (:class:`~freecg_plugin.configs.md.MDConfig`
settings) and its models, one per arm (``host``, ``host + FreeCG``), given as

* ``checkpoint: PATH`` (one model) or ``checkpoints: [PATH, ...]`` (seed ``k`` of the plan uses
  the ``k``-th, cycling): models trained elsewhere, e.g. by ``freecg compare``;
* ``train: CONFIG`` plus ``overrides: [KEY=VALUE, ...]``: trained once by ``freecg train`` under
  ``OUTPUT/models/CONFIG_HASH`` (resumed if interrupted; systems naming the same training share it).

Every (system, seed, arm) is a ``freecg md`` run in ``OUTPUT/SYSTEM/ARM/seed_S`` followed by its
analysis; arms alternate within a seed so that both meet the same machine. Finished runs are kept,
interrupted ones resume. The report (``md_comparison.md/.json/.png``) gives per system and arm:
stable time (mean ± std, and how many seeds ran to the end), the observables' error against the
reference frames, NVE drift or temperature, and speed (ns/day, FreeCG's cost as a ratio).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Sequence

from ..configs.md import MDConfig
from ..configs.reading import config_path, read_config
from ..files import write_json, write_text
from ..md.analysis import analyse
from ..md.simulation import simulate
from .execute import train_in_subprocess
from .plan_file import load_plan
from .plots import plot_md_comparison
from .statistics import format_stat, mean_std

__all__ = ["MDCompareConfig", "load_md_compare_config", "report", "run_plan"]

ARMS = ("host", "host + FreeCG")
_MD_KEYS = {f.name for f in fields(MDConfig)} - {"checkpoint", "output", "seed"}


@dataclass
class MDCompareConfig:
    """A plan: ``systems`` (each ``{name, md: {...}, models: {host: {...}, host + FreeCG: {...}}}``,
    optionally its own ``seeds``), ``md`` settings shared by all systems (a system's own ``md``
    wins), ``seeds`` and ``output``."""

    systems: List[Dict[str, Any]]
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    md: Dict[str, Any] = field(default_factory=dict)
    output: str = "runs/md_compare"

    def __post_init__(self) -> None:
        if not self.systems:
            raise ValueError("md-compare: the plan has no systems")
        if not self.seeds:
            raise ValueError("md-compare: no seeds")
        names = [s.get("name") for s in self.systems]
        if None in names or len(set(names)) != len(names):
            raise ValueError(f"md-compare: every system needs a unique name, got {names}")
        for system in self.systems:
            unknown = sorted(set(system) - {"name", "md", "models", "seeds"})
            if unknown:
                raise ValueError(f"md-compare: system {system['name']}: unknown keys {unknown}")
            for key in set(self.md) | set(system.get("md") or {}):
                if key not in _MD_KEYS:
                    raise ValueError(f"md-compare: system {system['name']}: unknown md setting {key!r}; known: {sorted(_MD_KEYS)}")
            models = system.get("models") or {}
            if set(models) != set(ARMS):
                raise ValueError(f"md-compare: system {system['name']}: models must be given for {list(ARMS)}, got {sorted(models)}")
            for arm, model in models.items():
                given = [k for k in ("checkpoint", "checkpoints", "train") if k in model]
                if len(given) != 1 or set(model) - {"checkpoint", "checkpoints", "train", "overrides"}:
                    raise ValueError(f"md-compare: {system['name']} / {arm}: give one of checkpoint, checkpoints, train (+ overrides)")


def load_md_compare_config(path, overrides: Sequence[str] = ()) -> MDCompareConfig:
    """A plan from YAML (a path or a shipped name), with ``key=value`` overrides (``seeds=[1]``,
    ``md.time=2``, ``output=...``)."""
    return load_plan(MDCompareConfig, path, "md_compare", overrides)


def _seeds(config: MDCompareConfig, system: Dict[str, Any]) -> List[int]:
    return list(system.get("seeds") or config.seeds)


def _slug(arm: str) -> str:
    return arm.replace(" + ", "_").replace(" ", "_").lower()


def _checkpoint(config: MDCompareConfig, system: Dict[str, Any], arm: str, index: int) -> str:
    """The model of ``arm`` for the ``index``-th seed, training it first when the plan says so
    (once per training config: systems that name the same one share the model)."""
    model = system["models"][arm]
    if "checkpoint" in model:
        return str(model["checkpoint"])
    if "checkpoints" in model:
        return str(model["checkpoints"][index % len(model["checkpoints"])])
    values = read_config(config_path(model["train"], "train"), model.get("overrides") or [])
    values.pop("output", None)
    key = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]
    folder = Path(config.output) / "models" / f"{Path(str(model['train'])).stem}_{key}"
    if not (folder / "test_metrics.json").is_file():
        print(f"md-compare: training {system['name']} / {arm} in {folder}", flush=True)
        train_in_subprocess(values, folder, f"{system['name']} / {arm}")
    return str(folder / "checkpoints" / "best.ckpt")


def _md_config(config: MDCompareConfig, system: Dict[str, Any], arm: str, seed: int, checkpoint: str) -> MDConfig:
    settings = dict(config.md, **(system.get("md") or {}))
    folder = Path(config.output) / system["name"] / _slug(arm) / f"seed_{seed}"
    return MDConfig(checkpoint=checkpoint, output=str(folder), seed=seed, **settings)


def run_plan(config: MDCompareConfig, progress: bool = True) -> Dict[str, Any]:
    """Run (or finish) every simulation of the plan, analyse each, then write the report."""
    for system in config.systems:
        for index, seed in enumerate(_seeds(config, system)):
            for arm in ARMS:
                md = _md_config(config, system, arm, seed, _checkpoint(config, system, arm, index))
                folder = Path(md.output)
                if not (folder / "analysis.json").is_file():
                    print(f"md-compare: {system['name']} / {arm} / seed {seed} -> {folder}", flush=True)
                    run = simulate(md, resume=(folder / "state.npz").is_file(), progress=progress)
                    print(f"  {run.status}: stable {run.stable_time:.3f} ps, {run.ns_per_day:.3g} ns/day", flush=True)
                    analyse(folder)
    return report(config)


def _collect(config: MDCompareConfig) -> List[Dict[str, Any]]:
    """One row per system and arm, over the seeds that finished."""
    rows = []
    for system in config.systems:
        for arm in ARMS:
            results = []
            for seed in _seeds(config, system):
                path = Path(config.output) / system["name"] / _slug(arm) / f"seed_{seed}" / "analysis.json"
                if path.is_file():
                    results.append(json.loads(path.read_text()))
            if not results:
                continue
            row: Dict[str, Any] = {"system": system["name"], "arm": arm, "seeds": len(results)}
            row["stable_time_ps"] = mean_std([r["stable_time_ps"] for r in results])
            row["completed"] = sum(r["status"] == "completed" for r in results)
            row["protocol_ps"] = float(dict(config.md, **(system.get("md") or {})).get("time", MDConfig.time))
            row["ns_per_day"] = mean_std([r["ns_per_day"] for r in results])
            for key in ("hr_mae", "drift_meV_atom_ps", "fluctuation_meV_atom", "temperature_K"):
                if all(key in r for r in results):
                    row[key] = mean_std([r[key] for r in results])
            if all("rdf_mae" in r for r in results):
                row["rdf_mae"] = {pair: mean_std([r["rdf_mae"][pair] for r in results]) for pair in results[0]["rdf_mae"]}
            if all("diffusivity" in r for r in results):
                row["diffusivity"] = {el: mean_std([r["diffusivity"][el]["value"] for r in results]) for el in results[0]["diffusivity"]}
            rows.append(row)
    for row in rows:  # FreeCG's MD cost: the host's speed over host + FreeCG's
        host = next((r for r in rows if r["system"] == row["system"] and r["arm"] == "host"), None)
        if row["arm"] == "host + FreeCG" and host is not None and row["ns_per_day"]["mean"] > 0:
            row["cost"] = host["ns_per_day"]["mean"] / row["ns_per_day"]["mean"]
    return rows


def markdown(rows: List[Dict[str, Any]], config: MDCompareConfig) -> str:
    """The report as a Markdown table per system."""
    lines = ["# MD comparison: host vs host + FreeCG", ""]
    for system in config.systems:
        mine = [r for r in rows if r["system"] == system["name"]]
        if not mine:
            continue
        settings = dict(config.md, **(system.get("md") or {}))
        lines += [f"## {system['name']}", "", f"protocol: {settings}; seeds {_seeds(config, system)}", ""]
        lines += [
            "| arm | seeds | stable time (ps) | ran to the end | observable error | NVE drift (meV/atom/ps) | T (K) | ns/day | cost |"
        ]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        for r in mine:
            observable = f"h(r) {format_stat(r.get('hr_mae'), significant=True)}" if "hr_mae" in r else ""
            if "rdf_mae" in r:
                observable = ", ".join(f"{pair} {format_stat(stat, significant=True)}" for pair, stat in r["rdf_mae"].items())
            cost = f"x{r['cost']:.2f}" if "cost" in r else ""
            lines.append(
                f"| {r['arm']} | {r['seeds']} | {format_stat(r['stable_time_ps'], significant=True)} of {r['protocol_ps']:g} | {r['completed']}/{r['seeds']} | "
                f"{observable} | {format_stat(r.get('drift_meV_atom_ps'), significant=True)} | {format_stat(r.get('temperature_K'), significant=True)} | {format_stat(r['ns_per_day'], significant=True)} | {cost} |"
            )
        diffusion = [r for r in mine if r.get("diffusivity")]
        for r in diffusion:
            values = ", ".join(f"D({el}) {format_stat(stat, significant=True)}" for el, stat in r["diffusivity"].items())
            lines.append(f"\n{r['arm']}: {values} Å²/ps (over the stable part)")
        lines.append("")
    return "\n".join(lines)


def report(config: MDCompareConfig) -> Dict[str, Any]:
    """Collect the finished runs into ``md_comparison.md``, ``.json`` and ``.png``."""
    output = Path(config.output)
    rows = _collect(config)
    result = {"plan": {"seeds": config.seeds, "md": config.md, "systems": config.systems}, "rows": rows}
    write_json(output / "md_comparison.json", result)
    text = markdown(rows, config)
    write_text(output / "md_comparison.md", text)
    if rows:
        plot_md_comparison(rows, ARMS, output / "md_comparison.png")
    print(text)
    return result
