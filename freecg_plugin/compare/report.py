"""The report of a ``freecg compare`` plan: finished runs collected per host, variant and budget
(mean ± std over seeds), a verdict per host, budget and metric, written as ``comparison.md``,
``comparison.json``, ``force_mae.png`` (or ``target_mae.png``) and ``learning_curves.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..files import write_json, write_text
from ..provenance import code_identity
from .curves import curve_report
from .plan import ABLATION_STEPS, BUDGET_NAMES, CURVE_METRICS, FIXED_BUDGETS, CompareConfig, Run, plan, width_of
from .plots import metric_name, plot_epoch_curves, plot_errors
from .records import check_equal_time_hardware, record_of, statuses
from .statistics import VERDICT_SPREAD, format_stat, mean_std, verdict

__all__ = ["COLUMNS", "compared_metrics", "markdown", "report", "verdicts"]


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


def report(config: CompareConfig, runs: Optional[List[Run]] = None, accept_stale: bool = False) -> Dict[str, Any]:
    """Collect finished runs into ``comparison.json``/``.md`` and the PNG plots; returns the JSON.

    Raises:
        RuntimeError: if the members of a pair did not see the same frames or seed.
        ValueError: finished runs made by other code than the code now running (stale), unless
            ``accept_stale``; an equal-time run on other hardware than its reference (one line).
    """
    output = Path(config.output)
    runs = runs if runs is not None else plan(config)
    stale = [run for state, run, _ in statuses(output, runs, code_identity()["sources_sha256"], queue={}) if state == "stale"]
    if stale and not accept_stale:
        raise ValueError(
            f"compare: {len(stale)} finished runs were made by other code than this (stale, e.g. {stale[0].folder}): "
            "run the plan again to redo them, or report them as they are with --accept-stale"
        )
    check_equal_time_hardware(output, runs)
    metrics = compared_metrics(config)
    by_key = {run.key: run for run in runs}
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    unit = None
    for run in runs:
        result = record_of(output, run)
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
            "width": width_of(by_key[members[0]["key"]]) if budget == "parameters" or variant == "host, equal parameters" else None,
            "seeds": [m["seed"] for m in members],
            "data_fingerprint": members[0].get("data_fingerprint"),
            "runs": [m["folder"] for m in members],
        }
        for key in metrics + [key for key, _ in COLUMNS if key not in metrics]:
            if all(key in m for m in members):
                row[key] = mean_std([float(m[key]) for m in members])
        rows.append(row)
    result = {
        "unit": unit,
        "metrics": metrics,
        "rows": rows,
        "verdicts": verdicts(rows, metrics),
        "plan": {"seeds": config.seeds, "budgets": config.budgets, "data": config.data, "optim": config.optim, "cutoff": config.cutoff},
    }
    write_json(output / "comparison.json", result)
    write_text(output / "comparison.md", markdown(result))
    if any(r["budget"] != "curve" for r in rows):  # the budgets at a fixed end (curves have their own plot)
        plot_errors(rows, metrics, unit, output / ("force_mae.png" if metrics == ["forces_mae"] else "target_mae.png"))
        epochs = [
            (label, variant, run.seed, output / run.folder / "logs")
            for run in runs
            if run.budget == "epochs"
            for label, variant in run.roles
        ]
        plot_epoch_curves(epochs, output / "learning_curves.png", unit, "val_forces_mae" if metrics == ["forces_mae"] else "val_loss")
    print(markdown(result), flush=True)
    if "curve" in config.budgets:
        result["curves"] = curve_report(output, runs, unit or "energy unit", config.curve.get("metric", CURVE_METRICS[0]))
        print((output / "curves.md").read_text(), flush=True)
    return result


def verdicts(rows: List[Dict[str, Any]], metrics: Sequence[str] = ("forces_mae",)) -> List[Dict[str, Any]]:
    """Per host, budget and compared metric: FreeCG's change of the test error against the bare
    host's, and the verdict (``freecg`` / ``host``: mean ± std over seeds)."""
    index = {(r["host"], r["variant"], r["budget"]): r for r in rows}
    out = []
    for (host, variant, own), row in index.items():
        if variant != "host + FreeCG":
            continue
        for budget in ["curve"] if own == "curve" else FIXED_BUDGETS:
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


def markdown(result: Dict[str, Any]) -> str:
    unit = result["unit"] or "energy unit"
    metrics = result.get("metrics", ["forces_mae"])
    if metrics == ["forces_mae"]:
        lines = [f"Test errors in {unit} (forces per Å); mean ± std over seeds where more than one.", ""]
        columns = list(COLUMNS)
    else:
        lines = ["Test MAE per target in its unit (meV for energies, D, bohr^3, bohr^2, cal/mol/K); mean ± std over seeds.", ""]
        columns = [(m, metric_name(m)) for m in metrics] + [c for c in COLUMNS if not c[0].startswith(("forces", "energy"))]
    columns = [(key, name) for key, name in columns if any(key in r for r in result["rows"])]  # what was measured
    header = ["host", "variant", "budget", *[name for _, name in columns]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    pair_rank = {("host", "epochs"): 0, ("host + FreeCG", "epochs"): 1, ("host", "time"): 2, ("host", "parameters"): 3}
    pair_rank.update({("host + FreeCG", "curve"): 4, ("host", "curve"): 5, ("host, equal parameters", "curve"): 6})
    first = {}
    for i, r in enumerate(result["rows"]):  # rows come in plan order
        first.setdefault(r["host"], i)
    steps = list(ABLATION_STEPS)

    def order(item):
        i, r = item
        step = r["variant"].split(" (")[0]
        rank = pair_rank.get((r["variant"], r["budget"]), 7 + (steps.index(step) if step in steps else -1))
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
            cells.append(format_stat(r[key], digits) if key in r else "")
        lines.append("| " + " | ".join(cells) + " |")
    if result["verdicts"]:
        lines += [
            "",
            f"Verdict: FreeCG's test error against the bare host's; a difference is clear beyond {VERDICT_SPREAD:g} standard errors "
            "of the difference over seeds (`freecg_plugin.compare.statistics.verdict`).",
            "",
            "| host | budget | error | host + FreeCG | host | change | verdict | seeds better | parameters (FreeCG / host) | cost per epoch |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in result["verdicts"]:
            lines.append(
                f"| {v['host']} | {BUDGET_NAMES[v['budget']]} | {metric_name(v['metric'])} | {format_stat(v['freecg'])} | {format_stat(v['host_error'])} | "
                f"{v['change_percent']:+.1f} % | {v['verdict']} | {v['seeds_better'][0]}/{v['seeds_better'][1]} | "
                f"{v['parameters'][0]:.0f} / {v['parameters'][1]:.0f} | "
                f"{v['cost_per_epoch']:.2f}x |"
            )
    return "\n".join(lines) + "\n"
