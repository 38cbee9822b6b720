"""Memory and speed over a long ``freecg md`` run: 10^5 steps of a small molecule in float32.

    .venv/bin/python benchmarks/md_long_run.py CHECKPOINT --output runs/md_long      # ~10 min for aspirin on 2 cores

Runs ``freecg md`` (Langevin, 300 K, 0.5 fs, float32, ``--keep-going``) as a child process and
samples, every ``--every`` seconds, its resident memory (``VmRSS``) and the last step it logged.
Writes ``OUTPUT/md_long_run.json``, ``.md`` and ``.png`` (memory and ms/step against the step):
the growth of resident memory from the end of the warm-up (the first tenth of the steps) to the
end, and the step time in each tenth of the run. The ``freecg md`` run itself is in
``OUTPUT/md/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from freecg_plugin.files import write_atomic, write_json, write_text


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _last_step(log: Path) -> int:
    if not log.is_file():
        return 0
    with open(log) as handle:
        rows = list(csv.reader(handle))
    return int(rows[-1][0]) if len(rows) > 1 and rows[-1] and rows[-1][0].isdigit() else 0


def sample(command: list, log: Path, every: float) -> list:
    """``(seconds, step, rss_mb)`` every ``every`` seconds while ``command`` runs."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    samples, start = [], time.perf_counter()
    while process.poll() is None:
        time.sleep(every)
        try:
            samples.append((time.perf_counter() - start, _last_step(log), _rss_mb(process.pid)))
        except (FileNotFoundError, ProcessLookupError, RuntimeError):
            break  # it ended between poll and read
    if process.wait() != 0:
        raise RuntimeError(f"freecg md failed (exit {process.returncode})")
    return samples


def progress(samples: list) -> list:
    """The samples at which the logged step moved on (the log reaches the file in buffered
    pieces, so the step advances in jumps): ``(seconds, step)``."""
    points = []
    for seconds, step, _ in samples:
        if not points or step > points[-1][1]:
            points.append((seconds, step))
    return points


def summarise(samples: list, steps: int) -> dict:
    """Memory growth after the warm-up, and ms/step in each tenth of the run (between the first
    and the last progress point inside it)."""
    if not samples:
        raise RuntimeError("freecg md ended before the first sample: use more --steps or a shorter --every")
    warm = [s for s in samples if s[1] >= steps // 10] or samples[-1:]  # a short run logs its steps at the end
    after_warmup, end = warm[0][2], samples[-1][2]
    points, tenths = progress(samples), []
    for k in range(10):
        inside = [p for p in points if k * steps / 10 <= p[1] <= (k + 1) * steps / 10]
        if len(inside) >= 2:
            tenths.append(1000 * (inside[-1][0] - inside[0][0]) / (inside[-1][1] - inside[0][1]))
    return {
        "rss_after_warmup_mb": after_warmup,
        "rss_end_mb": end,
        "rss_peak_mb": max(s[2] for s in samples),
        "rss_growth_percent": 100 * (end / after_warmup - 1),
        "ms_per_step_by_tenth": tenths,
    }


def plot(samples: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, speed) = plt.subplots(1, 2, figsize=(9, 3.4))
    memory.plot([s[1] for s in samples], [s[2] for s in samples])
    memory.set_xlabel("step")
    memory.set_ylabel("resident memory (MB)")
    memory.set_ylim(0, max(s[2] for s in samples) * 1.1)
    points = progress(samples)
    pairs = [(b[1], 1000 * (b[0] - a[0]) / (b[1] - a[1])) for a, b in zip(points, points[1:])]
    speed.plot([p[0] for p in pairs], [p[1] for p in pairs], ".-", ms=3)
    speed.set_xlabel("step")
    speed.set_ylabel("ms per step")
    speed.set_ylim(0, max([p[1] for p in pairs], default=1.0) * 1.1)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    args = parser.parse_args()
    output = Path(args.output)
    timestep = 0.5
    command = [
        str(Path(sys.executable).with_name("freecg")), "md", "--checkpoint", args.checkpoint, "--output", str(output / "md"),
        "--ensemble", "langevin", "--temperature", "300", "--timestep", str(timestep), "--time", str(args.steps * timestep / 1000),
        "--dtype", "float32", "--keep-going", "--quiet", "--log-every", "100", "--save-every", "10000",
    ]  # fmt: skip
    print("$", " ".join(command), flush=True)
    samples = sample(command, output / "md" / "log.csv", args.every)
    result = {"steps": args.steps, "checkpoint": args.checkpoint, **summarise(samples, args.steps)}
    summary = json.loads((output / "md" / "summary.json").read_text())
    result["md_status"], result["ns_per_day"] = summary["status"], summary["ns_per_day"]
    tenths = result["ms_per_step_by_tenth"] or [float("nan")]  # a run too short for its sampling has none
    text = (
        f"{args.steps} steps, float32, {result['md_status']}: resident memory {result['rss_after_warmup_mb']:.0f} MB after the warm-up, "
        f"{result['rss_end_mb']:.0f} MB at the end ({result['rss_growth_percent']:+.1f} %), peak {result['rss_peak_mb']:.0f} MB; "
        f"ms/step by tenth of the run {min(tenths):.2f}-{max(tenths):.2f} (" + ", ".join(f"{t:.2f}" for t in tenths) + ")\n"
    )
    write_json(output / "md_long_run.json", {**result, "samples": samples})
    write_text(output / "md_long_run.md", text)
    plot(samples, output / "md_long_run.png")
    print(text, flush=True)


if __name__ == "__main__":
    main()
