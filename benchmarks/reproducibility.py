"""How far the README's main job (``freecg train --config small``) moves between runs: three seeds,
the first seed again at another thread count, and the first run repeated as it was (is training on
the CPU repeatable bit for bit?).

    .venv/bin/python benchmarks/reproducibility.py --output runs/reproducibility     # ~25 min on 2 cores

Extra ``key=value`` arguments change the main job (as for ``freecg train``), e.g. a smaller one.

Writes ``OUTPUT/reproducibility.json`` and ``.md``: per run the seed, threads, test force and
energy MAE, epochs and seconds; the mean and range of the force MAE over the seeds; and whether
the repeated run equals its first run in every reported digit. Finished runs are kept (re-running
skips them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from freecg_plugin.files import write_json, write_text

SEEDS = (1, 2, 3)
THREADS = (2, 1)
KEYS = ("forces_mae", "energy_mae", "forces_rmse", "epochs", "train_seconds")


def train(output: Path, seed: int, threads: int, overrides: list) -> dict:
    """One main job (kept when it has finished already)."""
    metrics = output / "test_metrics.json"
    if not metrics.is_file():
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        command = [
            str(Path(sys.executable).with_name("freecg")),
            "train",
            "--config",
            "small",
            *overrides,
            f"optim.seed={seed}",
            f"output={output}",
        ]
        print("$", " ".join(command), f"(threads {threads})", flush=True)
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    values = json.loads(metrics.read_text())
    return {"seed": seed, "threads": threads, **{k: values[k] for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("overrides", nargs="*", help="key=value changes of the main job")
    args = parser.parse_args()
    output, changes = Path(args.output), list(args.overrides)
    runs = [train(output / f"seed{s}_threads{THREADS[0]}", s, THREADS[0], changes) for s in SEEDS]
    other = train(output / f"seed{SEEDS[0]}_threads{THREADS[1]}", SEEDS[0], THREADS[1], changes)
    repeat = train(output / f"seed{SEEDS[0]}_threads{THREADS[0]}_again", SEEDS[0], THREADS[0], changes)
    identical = all(repeat[k] == runs[0][k] for k in ("forces_mae", "energy_mae", "forces_rmse", "epochs"))
    lines = [
        "| seed | threads | test force MAE (kcal/mol/Å) | energy MAE (kcal/mol) | epochs | training s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['seed']} | {r['threads']} | {r['forces_mae']:.4f} | {r['energy_mae']:.4f} | {r['epochs']} | {r['train_seconds']:.0f} |"
        for r in [*runs, other, repeat]
    ]
    values = [r["forces_mae"] for r in runs]
    summary = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}
    lines.append(
        f"\nseeds {list(SEEDS)} at {THREADS[0]} threads: force MAE {summary['mean']:.2f} (range {summary['min']:.2f}-{summary['max']:.2f})"
    )
    lines.append(
        f"seed {SEEDS[0]} at {THREADS[1]} thread(s): {other['forces_mae']:.2f} ({100 * (other['forces_mae'] / runs[0]['forces_mae'] - 1):+.1f} %)"
    )
    lines.append(f"\nseed {SEEDS[0]} at {THREADS[0]} threads run twice: {'identical' if identical else 'different'} metrics")
    text = "\n".join(lines) + "\n"
    write_text(output / "reproducibility.md", text)
    write_json(
        output / "reproducibility.json",
        {"runs": runs, "other_threads": other, "repeat": repeat, "identical": identical, "summary": summary},
    )
    print(text, flush=True)


if __name__ == "__main__":
    main()
