"""``freecg compare`` on several rMD17 molecules, and one table of the verdicts.

Runs (or resumes) a comparison plan once per molecule, each in ``OUTPUT/<molecule>/``, then
writes ``OUTPUT/molecules.md`` and ``OUTPUT/molecules.png``: per host and molecule, FreeCG's
change of test force MAE against the bare host at each budget, mean ± std over the plan's seeds,
and the verdict of :func:`freecg_plugin.compare.verdict`. A plan of time-to-accuracy curves
(``--preset curves``) adds their table (errors at the horizon against both bare arms, cross-over
times, whether each curve flattened) and ``OUTPUT/molecules_curves.png`` (a row per molecule).

    .venv/bin/python benchmarks/compare_molecules.py --preset quick --output runs/molecules_quick
    .venv/bin/python benchmarks/compare_molecules.py --preset quick --report-only ...   # tables only

Extra ``key=value`` arguments override the plan (e.g. ``budgets=[epochs]``), as for ``freecg compare``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from freecg_plugin.compare import BUDGET_NAMES, load_compare_config, report, run_plan
from freecg_plugin.compare.curves import crossover_text, plot_curves, seed_rows
from freecg_plugin.compare.plan import CURVE_ARMS
from freecg_plugin.compare.statistics import format_stat
from freecg_plugin.configs import config_path
from freecg_plugin.files import write_atomic

MOLECULES = ("aspirin", "ethanol", "benzene", "naphthalene", "toluene")  # shipped with split 01


def _cell(v: dict) -> str:
    f, h = v["freecg"], v["host_error"]
    spread = f" (± {100 * f['std'] / h['mean']:.0f} %)" if f["n"] > 1 else ""
    better, seeds = v["seeds_better"]
    return f"{v['change_percent']:+.1f} %{spread} {v['verdict']}, {better}/{seeds}"


def table(results: dict) -> str:
    """Markdown: one row per host and budget, one column per molecule."""
    molecules = list(results)
    rows = {}
    for molecule, result in results.items():
        for v in result["verdicts"]:
            rows.setdefault((v["host"], v["budget"]), {})[molecule] = v
    first = next(iter(results.values()))
    plan = first["plan"]
    tested = (
        " Each run's record tests its best checkpoint on validation loss; the curves' table below tests the "
        "EMA weights at the horizon, so their figures differ a little."
        if "curve" in plan["budgets"]
        else ""
    )
    lines = [
        f"FreeCG's change of test force MAE against the bare host (mean over seeds {plan['seeds']}; "
        "± the seed spread of host + FreeCG as a share of the host's MAE), the verdict, and on how many seeds "
        "host + FreeCG was the better of the two." + tested,
        "",
        "| host | budget | " + " | ".join(molecules) + " |",
        "|---|---|" + "---|" * len(molecules),
    ]
    order = list(BUDGET_NAMES)
    for (host, budget), cells in sorted(rows.items(), key=lambda item: (item[0][0], order.index(item[0][1]))):
        lines.append(f"| {host} | {BUDGET_NAMES[budget]} | " + " | ".join(_cell(cells[m]) if m in cells else "" for m in molecules) + " |")
    return "\n".join(lines) + "\n"


def _flat(value) -> str:
    return {True: "yes", False: "no", None: "?"}[value]


def curves_table(curves: dict) -> str:
    """Markdown from each molecule's curve report (:func:`freecg_plugin.compare.curves.curve_report`):
    per host and molecule, each arm's test force MAE at the end of the horizon, host + FreeCG's
    change against each bare arm with the verdict, the cross-over time, whether each curve
    flattened over its last doubling of time, and the time each arm took to reach the bare host's
    final error; then each seed's errors and changes, and the changes' mean ± std paired by seed."""
    first = next(iter(curves.values()))
    freecg, host, wide = CURVE_ARMS
    lines = [
        f"Time-to-accuracy curves: test force MAE ({first['unit']}/Å) at the end of each host's horizon (seconds of training clock) "
        "(mean ± std over the seeds there, their number in brackets); host + FreeCG's change against each bare arm and the "
        "verdict; the cross-over time (from which host + FreeCG stays ahead of the bare host beyond two standard errors); "
        "whether each curve changed by less than 5 % over its last doubling of time (FreeCG / host / equal parameters); "
        "the time each arm took to reach the bare host's final error.",
        "",
        f"| host | molecule | horizon (s) | {freecg} | {host} | {wide} | against {host} | against {wide} | cross-over (s) | "
        "flattened | time to the host's final error (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = {}
    for molecule, curve_report in curves.items():
        for summary in curve_report["summaries"]:
            rows.setdefault(summary["host"], []).append((molecule, summary))
    for label, found in rows.items():
        for molecule, s in found:
            arms = s["arms"]
            end = [f"{format_stat(arms[a]['end'])} ({arms[a]['seeds']})" if a in arms else "" for a in CURVE_ARMS]
            against = [
                f"{s['verdicts'][a]['change_percent']:+.1f} % {s['verdicts'][a]['verdict']}" if a in s.get("verdicts", {}) else ""
                for a in (host, wide)
            ]
            cross = crossover_text(s)
            flat = " / ".join(_flat(s.get("flattened", {}).get(a)) for a in CURVE_ARMS)
            reach = s.get("time_to", {}).get("1x", {})
            times = " / ".join("-" if reach.get(a) is None else f"{reach[a]:g}" for a in CURVE_ARMS)
            lines.append(f"| {label} | {molecule} | {s['horizon_s']:g} | " + " | ".join([*end, *against, cross, flat, times]) + " |")
    lines += [
        "",
        "Per seed: test force MAE at the horizon (epochs trained in brackets) and host + FreeCG's change against each bare arm; "
        "a seed's arms ran on one machine, so the row `paired` (mean ± std of those changes) leaves out what differs between machines.",
        "",
        f"| host | molecule | seed | {freecg} | {host} | {wide} | against {host} | against {wide} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, found in rows.items():
        lines += [f"| {label} | {molecule} | " + " | ".join(cells) + " |" for molecule, s in found for cells in seed_rows(s)]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = [b for b in BUDGET_NAMES if any(v["budget"] == b for r in results.values() for v in r["verdicts"])]
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.6), squeeze=False, sharey=True)
    for ax, budget in zip(axes[0], budgets):
        hosts = sorted({v["host"] for r in results.values() for v in r["verdicts"]})
        width = 0.8 / len(results)
        for m, (molecule, result) in enumerate(results.items()):
            found = {v["host"]: v for v in result["verdicts"] if v["budget"] == budget}
            xs = [h + (m - (len(results) - 1) / 2) * width for h, host in enumerate(hosts) if host in found]
            ys = [found[host]["change_percent"] for host in hosts if host in found]
            es = [100 * found[host]["freecg"]["std"] / found[host]["host_error"]["mean"] for host in hosts if host in found]
            ax.bar(xs, ys, width, yerr=es, capsize=2, label=molecule)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(hosts)), hosts, rotation=30)
        ax.set_title(BUDGET_NAMES[budget])
    axes[0][0].set_ylabel("force MAE change with FreeCG (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="a shipped compare plan or a plan file")
    parser.add_argument("--output", required=True)
    parser.add_argument("--molecules", default=",".join(MOLECULES), help="comma-separated (default: the five shipped)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--accept-stale", action="store_true", help="keep and report finished runs made by other code than this")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    output = Path(args.output)
    results = {}
    for molecule in args.molecules.split(","):
        overrides = [*args.overrides, f"data.dataset=rmd17/{molecule}", f"output={output / molecule}"]
        config = load_compare_config(config_path(args.preset, "compare"), overrides)
        print(f"== {molecule}", flush=True)
        results[molecule] = (report if args.report_only else run_plan)(config, accept_stale=args.accept_stale)
    text = table(results)
    curves = {molecule: result["curves"] for molecule, result in results.items() if result.get("curves", {}).get("curves")}
    if curves:
        text += "\n" + curves_table(curves)
        first = next(iter(curves.values()))
        plot_curves(
            {molecule: c["curves"] for molecule, c in curves.items()}, first["metric"], first["unit"], output / "molecules_curves.png"
        )
    write_atomic(output / "molecules.md", lambda tmp: Path(tmp).write_text(text))
    write_atomic(output / "molecules.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    plot(results, output / "molecules.png")
    print(text, flush=True)


if __name__ == "__main__":
    main()
