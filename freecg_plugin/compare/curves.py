"""Time-to-accuracy curves (``budgets: [curve]``): does FreeCG pay for itself, and from which
training time on?

Every arm (host + FreeCG, the bare host, and the bare host widened to host + FreeCG's parameter
count) trains once for the plan's horizon of training-clock time (or its host entry's own
``horizon_s``, for a host that needs longer to flatten); its tested weights are saved at
log-spaced times and evaluated afterwards (:mod:`~freecg_plugin.training.snapshots`). Per host,
over the seeds:

* the curves, mean ± std of the test force MAE at each time (``curves.png``, log-log);
* the **cross-over time**: the first time from which host + FreeCG stays ahead of the bare host
  at every later point by more than two standard errors of the difference (the verdict rule of
  :func:`~freecg_plugin.compare.statistics.verdict`), or none within the horizon;
* the time each arm needs to reach 1.5x, 1.2x and 1.0x the bare host's final error;
* the error at the end of the horizon, with the verdict against each bare arm;
* whether the bare host's curve has flattened: less than 5 % change over the last doubling of time;
* per seed, each arm's error and epochs at the horizon and host + FreeCG's change against each bare
  arm: a seed's arms run on one machine, one after the other, so these changes are paired, and
  their mean ± std leaves out what differs between machines (the verdict rule does not pair).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..files import write_json, write_text
from ..plots import pyplot, save_png
from .plan import CURVE_ARMS as ARMS
from .statistics import VERDICT_SPREAD, format_stat, mean_std, verdict

__all__ = ["FLAT", "TARGETS", "crossover", "crossover_text", "curve_report", "flattened", "plot_curves", "seed_rows", "time_to"]

TARGETS = (1.5, 1.2, 1.0)
"""Fixed errors, as multiples of the bare host's final error, that each arm's time to reach is reported for."""
FLAT = 0.05
"""A curve has flattened when its error changed by less than this over the last doubling of time."""


def _clear_lead(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """``a``'s mean below ``b``'s by more than two standard errors of the difference (``verdict``'s rule)."""
    if a["n"] < 2 or b["n"] < 2:
        return False
    error = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    return b["mean"] - a["mean"] > VERDICT_SPREAD * error


def crossover(times: Sequence[float], freecg: Sequence[Dict[str, Any]], host: Sequence[Dict[str, Any]]) -> Optional[float]:
    """The first of ``times`` from which ``freecg`` (mean ± std per time) stays clearly ahead of
    ``host`` at every later time; ``None`` when it is not ahead at the last one."""
    found = None
    for t, a, b in zip(times, freecg, host):
        if _clear_lead(a, b):
            found = t if found is None else found
        else:
            found = None
    return found


def time_to(times: Sequence[float], curve: Sequence[Dict[str, Any]], target: float) -> Optional[float]:
    """The first time at which the mean error is at or below ``target`` (``None``: never)."""
    return next((t for t, point in zip(times, curve) if point["mean"] <= target), None)


def flattened(times: Sequence[float], curve: Sequence[Dict[str, Any]]) -> Optional[bool]:
    """Whether the mean error changed by less than :data:`FLAT` from the last snapshot at or before
    half the last time to the last time (a doubling or more: 240 -> 600 s on a 15 s x 2^k grid
    ending at 600 s; ``None``: the curve does not span a doubling)."""
    half = [k for k, t in enumerate(times) if t <= times[-1] / 2 * (1 + 1e-6)]
    if not half:
        return None
    before, last = curve[half[-1]]["mean"], curve[-1]["mean"]
    return abs(last / before - 1) < FLAT


def _finished_curves(output: Path, runs: Sequence[Any]):
    """``(run, points)`` for each curve run of ``runs`` whose ``curve.json`` is there."""
    for run in runs:
        path = output / run.folder / "curve.json"
        if run.budget == "curve" and path.is_file():
            points = json.loads(path.read_text())["points"]
            if points:
                yield run, points


def collect(finished: Sequence[tuple], metric: str = "test_forces_mae") -> Dict[str, Dict[str, Any]]:
    """Per host label and arm: the snapshot times and ``metric`` as mean ± std over the seeds
    whose curves are there (every seed of a plan has the same times); ``finished``: ``(run, points)``
    pairs from :func:`_finished_curves`."""
    seeds: Dict[tuple, List[List[Dict[str, Any]]]] = {}
    for run, points in finished:
        for label, arm in run.roles:
            seeds.setdefault((label, arm), []).append(points)
    curves: Dict[str, Dict[str, Any]] = {}
    for (label, arm), members in seeds.items():
        times = [p["time_s"] for p in members[0] if all(any(q["time_s"] == p["time_s"] for q in m) for m in members)]
        values = [mean_std([next(q[metric] for q in m if q["time_s"] == t) for m in members]) for t in times]
        curves.setdefault(label, {})[arm] = {"times": times, metric: values, "seeds": len(members)}
    return curves


def _seed_ends(finished: Sequence[tuple]) -> Dict[str, Dict[int, Dict[str, Dict[str, Any]]]]:
    """Per host label, seed and arm: the snapshot points of that run's curve, by time."""
    ends: Dict[str, Dict[int, Dict[str, Dict[str, Any]]]] = {}
    for run, points in finished:
        for label, arm in run.roles:
            ends.setdefault(label, {}).setdefault(run.seed, {})[arm] = {p["time_s"]: p for p in points}
    return ends


def _per_seed(horizon: float, seeds: Dict[int, Dict[str, Dict[str, Any]]], metric: str) -> List[Dict[str, Any]]:
    """Each seed's arms at ``horizon`` (``error``: ``metric``, ``epoch``) and host + FreeCG's change
    against each bare arm there, in percent."""
    rows = []
    for seed in sorted(seeds):
        at = {arm: points[horizon] for arm, points in seeds[seed].items() if horizon in points}
        arms = {arm: {"error": p[metric], "epoch": p["epoch"]} for arm, p in at.items()}
        ours = arms.get(ARMS[0])
        change = {arm: 100 * (ours["error"] / a["error"] - 1) for arm, a in arms.items() if ours and arm != ARMS[0]}
        rows.append({"seed": seed, "arms": arms, "change_percent": change})
    return rows


def _summary(label: str, arms: Dict[str, Dict[str, Any]], seeds: Dict[int, Dict[str, Dict[str, Any]]], metric: str) -> Dict[str, Any]:
    ours, host = arms.get(ARMS[0]), arms.get(ARMS[1])
    horizon = max(c["times"][-1] for c in arms.values())
    per_seed = _per_seed(horizon, seeds, metric)
    paired = {arm: [row["change_percent"][arm] for row in per_seed if arm in row["change_percent"]] for arm in ARMS[1:]}
    out: Dict[str, Any] = {
        "host": label,
        "horizon_s": horizon,
        "arms": {arm: {"seeds": c["seeds"], "end": c[metric][-1]} for arm, c in arms.items()},
        "per_seed": per_seed,
        "paired_change_percent": {arm: mean_std(changes) for arm, changes in paired.items() if changes},
    }
    if ours is None or host is None:
        return out
    shared = [t for t in ours["times"] if t in host["times"]]
    pick = lambda curve: [curve[metric][curve["times"].index(t)] for t in shared]  # noqa: E731
    out["crossover_s"] = crossover(shared, pick(ours), pick(host))
    final = host[metric][-1]["mean"]
    out["time_to"] = {f"{x:g}x": {arm: time_to(c["times"], c[metric], x * final) for arm, c in arms.items()} for x in TARGETS}
    out["flattened"] = {arm: flattened(c["times"], c[metric]) for arm, c in arms.items()}
    out["verdicts"] = {
        arm: {
            "verdict": verdict(ours[metric][-1]["values"], c[metric][-1]["values"]),
            "change_percent": 100 * (ours[metric][-1]["mean"] / c[metric][-1]["mean"] - 1),
        }
        for arm, c in arms.items()
        if arm != ARMS[0]
    }
    return out


def crossover_text(summary: Dict[str, Any]) -> str:
    """A summary's cross-over time as a table cell: seconds, "none within the horizon", or
    "undecided (one seed)" where an arm has fewer than two seeds (no spread, no clear lead)."""
    if "verdicts" not in summary:
        return ""
    if min(arm["seeds"] for arm in summary["arms"].values()) < 2:
        return "undecided (one seed)"
    return "none within the horizon" if summary["crossover_s"] is None else f"{summary['crossover_s']:g}"


def seed_rows(summary: Dict[str, Any]) -> List[List[str]]:
    """Table cells of a summary's seeds: the seed, each arm's error at the horizon with its epochs,
    host + FreeCG's change against each bare arm; then a row of those changes' mean ± std."""
    rows = []
    for row in summary["per_seed"]:
        ends = [f"{row['arms'][a]['error']:.3f} ({row['arms'][a]['epoch']})" if a in row["arms"] else "" for a in ARMS]
        changes = [f"{row['change_percent'][a]:+.1f} %" if a in row["change_percent"] else "" for a in ARMS[1:]]
        rows.append([str(row["seed"]), *ends, *changes])
    paired = summary["paired_change_percent"]
    signed = lambda p: f"{p['mean']:+.1f} ± {p['std']:.1f} %" if p["n"] > 1 else f"{p['mean']:+.1f} %"  # noqa: E731
    rows.append(["paired", *[""] * len(ARMS), *(signed(paired[a]) if a in paired else "" for a in ARMS[1:])])
    return rows


def _metric_label(metric: str) -> str:
    """``test_forces_mae`` -> ``test force MAE``."""
    split, _, name = metric.partition("_")
    return f"{'validation' if split == 'val' else split} {name.replace('forces_', 'force ').replace('energy_', 'energy ').replace('mae', 'MAE').replace('rmse', 'RMSE')}"


def _markdown(summaries: List[Dict[str, Any]], metric: str, unit: str) -> str:
    lines = [
        f"Time-to-accuracy: {_metric_label(metric)} ({unit}/Å) against training-clock time up to each host's horizon; "
        "mean ± std over seeds.",
        "",
        "| host | horizon (s) | arm | error at the horizon | host + FreeCG against this arm | flattened | "
        + " | ".join(f"time to {x:g}x host's final (s)" for x in TARGETS)
        + " | cross-over (s) |",
        "|---|---|---|---|---|---|" + "---|" * len(TARGETS) + "---|",
    ]
    for s in summaries:
        for arm, info in s["arms"].items():
            v = s.get("verdicts", {}).get(arm)
            against = f"{v['change_percent']:+.1f} %, {v['verdict']}" if v else ""
            flat = {True: "yes", False: "no", None: ""}[s.get("flattened", {}).get(arm)]
            reach = [s.get("time_to", {}).get(f"{x:g}x", {}).get(arm) for x in TARGETS]
            cross = "" if arm != ARMS[0] else crossover_text(s)
            cells = (
                [s["host"], f"{s['horizon_s']:g}", arm, format_stat(info["end"]), against, flat]
                + ["" if r is None else f"{r:g}" for r in reach]
                + [cross]
            )
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Per seed: {_metric_label(metric)} at the horizon (epochs trained in brackets) and host + FreeCG's change against each "
        "bare arm; a seed's arms ran on one machine, so the last row (mean ± std of those changes) is paired by seed.",
        "",
        "| host | seed | " + " | ".join(ARMS) + " | " + " | ".join(f"against {arm}" for arm in ARMS[1:]) + " |",
        "|---|---|" + "---|" * (2 * len(ARMS) - 1),
    ]
    lines += ["| " + " | ".join([s["host"], *cells]) + " |" for s in summaries for cells in seed_rows(s)]
    return "\n".join(lines) + "\n"


def plot_curves(rows: Dict[str, Dict[str, Dict[str, Any]]], metric: str, unit: str, path: Path) -> None:
    """One log-log panel per host, one row of panels per entry of ``rows`` (e.g. a molecule; its
    name heads the row's panels unless empty): each arm's mean ± std of ``metric`` against time.

    Args:
        rows: row name -> host label -> arm -> curve (``times``, ``metric``'s mean ± std per time, ``seeds``).
    """
    plt = pyplot()
    from matplotlib import ticker

    width = max(len(hosts) for hosts in rows.values())
    fig, axes = plt.subplots(len(rows), width, figsize=(4.2 * width, 3.6 * len(rows)), squeeze=False)
    for panels, (name, hosts) in zip(axes, rows.items()):
        for ax in panels[len(hosts) :]:
            ax.set_visible(False)
        for ax, (label, arms) in zip(panels, hosts.items()):
            for arm, curve in arms.items():
                means = [p["mean"] for p in curve[metric]]
                stds = [p["std"] for p in curve[metric]]
                ax.errorbar(curve["times"], means, yerr=stds, marker="o", ms=3, capsize=2, label=f"{arm} ({curve['seeds']} seeds)")
            ax.set(xscale="log", yscale="log", xlabel="training time (s)", title=f"{name}: {label}" if name else label)
            for axis in (ax.xaxis, ax.yaxis):  # labelled ticks at 1, 2, 5 x 10^k: a curve may span less than a decade
                axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
                axis.set_minor_formatter(ticker.NullFormatter())
            ax.legend(fontsize=7)
        panels[0].set_ylabel(f"{_metric_label(metric)} ({unit}/Å)")
    fig.tight_layout()
    save_png(fig, path)


def curve_report(output: Path, runs: Sequence[Any], unit: str, metric: str = "test_forces_mae") -> Dict[str, Any]:
    """Write ``curves.md``, ``curves.json`` and ``curves.png`` from the finished curve runs; returns
    the JSON (each host's summary names its horizon: the last time of its curves)."""
    finished = list(_finished_curves(output, runs))  # each curve.json read once
    curves = collect(finished, metric)
    seeds = _seed_ends(finished)
    summaries = [_summary(label, arms, seeds[label], metric) for label, arms in curves.items()]
    result = {"metric": metric, "unit": unit, "curves": curves, "summaries": summaries}
    write_json(output / "curves.json", result)
    write_text(output / "curves.md", _markdown(summaries, metric, unit))
    if curves:
        plot_curves({"": curves}, metric, unit, output / "curves.png")
    return result
