"""Energy + forces on periodic water boxes of growing size: time per atom and peak memory, every
host bare and with FreeCG, side by side in one run.

    python benchmarks/water_scale.py [--preset water] [--replicas 1,2,4] [--hosts visnet,painn] [--repeats 3]
                                     [--allocators default,heap] [--png water_scale.png]

The shipped liquid-water frame (64 H2O, 12.4 Å cubic cell: 192 atoms) is replicated ``r x r x r``
times (``--replicas 1,2,4``: 192, 1,536 and 12,288 atoms). Hosts and sizes are a ``freecg compare``
preset's (default ``water``), float32, CPU. Each (size, host, bare or FreeCG) runs in a fresh
subprocess, so that its peak resident memory (sampled every ms, above the level after building the
model and the graph, over the warm-up and the timed calls) is its own; the time is the median over
``--repeats`` calls after one warm-up of energy and forces (no ``create_graph``: the MD path). The
neighbour list (vesin's cell list) is timed apart.

``--allocators``: each subprocess runs under every allocator setting listed, side by side.
``default`` is glibc as it comes: every buffer over 32 MiB (at 10^4 atoms, most per-edge tensors)
is a fresh ``mmap`` that the kernel hands over page by page on every call. ``heap`` sets
:data:`freecg_plugin.allocator.HEAP_ENVIRONMENT` (glibc's environment variables: no ``mmap`` for large buffers, freed memory
kept in the heap), so that large buffers are reused from one call to the next (what a caching
allocator such as jemalloc or tcmalloc would do; neither is installed here).

Prints one line per run, then per host and allocator the time per atom at the largest size over
the second largest (flat: within 30 %) and memory per atom; writes the curves as a PNG (one row
per allocator).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import PeakRSS, build_model, preset_hosts

from freecg_plugin.allocator import HEAP_ENVIRONMENT
from freecg_plugin.atomistic import Structure, collate, evaluate
from freecg_plugin.data import dataset, load_npz, locate

WATER = "water/deepmd64"

ALLOCATORS = {"default": {}, "heap": HEAP_ENVIRONMENT}


def water_box(replicas: int) -> Structure:
    """The first shipped water frame repeated ``replicas`` times along each cell vector."""
    entry = dataset(WATER)
    frames = load_npz(locate(WATER) / entry.files[0].path, entry.energy_unit)
    frame = frames.structures[0]
    cell = frame.cell.double()
    shifts = torch.stack(torch.meshgrid(*[torch.arange(replicas)] * 3, indexing="ij"), -1).reshape(-1, 3).double() @ cell
    positions = (frame.positions.double()[None] + shifts[:, None]).reshape(-1, 3)
    return Structure(frame.numbers.repeat(len(shifts)), positions, cell * replicas, True)


def one_run(preset: str, host: str, variant: str, replicas: int, repeats: int) -> dict:
    """Time and memory of one (host, variant, size), measured in this process."""
    (entry,), cutoff = preset_hosts(preset, host)
    structure = water_box(replicas)
    start = time.perf_counter()
    graph = collate([structure], cutoff)
    neighbours = time.perf_counter() - start
    graph.positions, graph.cell, graph.shifts = graph.positions.float(), graph.cell.float(), graph.shifts.float()
    model = build_model(entry, cutoff, sorted(set(graph.numbers.tolist())), variant == "freecg")
    times = []
    with PeakRSS() as rss:
        evaluate(model, graph, forces=True)  # warm-up (and the group CG kernel's first load)
        for _ in range(repeats):
            start = time.perf_counter()
            evaluate(model, graph, forces=True)
            times.append(time.perf_counter() - start)
    return {
        "host": host,
        "variant": variant,
        "atoms": int(graph.numbers.numel()),
        "edges": int(graph.edge_index.shape[1]),
        "seconds": statistics.median(times),
        "neighbour_seconds": neighbours,
        "peak_bytes": max(rss.bytes, 0),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allocators = list(dict.fromkeys(r["allocator"] for r in results))
    fig, axes = plt.subplots(len(allocators), 2, figsize=(11, 4.2 * len(allocators)), squeeze=False)
    hosts = sorted({r["host"] for r in results})
    colours = dict(zip(hosts, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for (ax_time, ax_memory), allocator in zip(axes, allocators):
        for host in hosts:
            for variant, style in (("bare", "--"), ("freecg", "-")):
                rows = sorted(
                    (r for r in results if (r["host"], r["variant"], r["allocator"]) == (host, variant, allocator)),
                    key=lambda r: r["atoms"],
                )
                atoms = [r["atoms"] for r in rows]
                label = f"{host}{' + FreeCG' if variant == 'freecg' else ''}"
                ax_time.plot(atoms, [1e6 * r["seconds"] / r["atoms"] for r in rows], style, marker="o", color=colours[host], label=label)
                ax_memory.plot(atoms, [r["peak_bytes"] / 2**20 for r in rows], style, marker="o", color=colours[host], label=label)
        for ax, ylabel, title in (
            (ax_time, "energy + forces, µs per atom", "time per atom"),
            (ax_memory, "peak memory above the model and graph (MiB)", "memory"),
        ):
            ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel=ylabel, title=f"{title} ({allocator} allocator)")
        ax_time.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    partial = path.with_name(path.stem + ".partial.png")
    fig.savefig(partial, dpi=120)
    plt.close(fig)
    partial.replace(path)


def summary(results: list[dict], hosts: list[str], allocator: str) -> None:
    """Scaling from the second largest to the largest size, and FreeCG's cost at the largest."""
    rows = [r for r in results if r["allocator"] == allocator]
    sizes = sorted({r["atoms"] for r in rows})
    if len(sizes) < 2:
        return
    second, largest = sizes[-2:]
    for host in hosts:
        for variant in ("bare", "freecg"):
            by_size = {r["atoms"]: r for r in rows if r["host"] == host and r["variant"] == variant}
            if largest in by_size and second in by_size:
                a, b = by_size[largest], by_size[second]
                ratio = (a["seconds"] / a["atoms"]) / (b["seconds"] / b["atoms"])
                memory = (a["peak_bytes"] / a["atoms"]) / max(b["peak_bytes"] / b["atoms"], 1)
                print(
                    f"scale {host} {variant} ({allocator}): time per atom {largest}/{second} = {ratio:.2f} "
                    f"(flat within 30 %: {abs(ratio - 1) <= 0.3}); memory per atom {memory:.2f}"
                )
        pair = {(r["variant"], r["atoms"]): r for r in rows if r["host"] == host}
        if ("bare", largest) in pair and ("freecg", largest) in pair:
            cost = pair[("freecg", largest)]["seconds"] / pair[("bare", largest)]["seconds"]
            print(f"cost {host} at {largest} atoms ({allocator}): x{cost:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="water")
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--hosts", default=None, help="comma-separated subset of the preset's hosts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--allocators", default="default", help=f"comma-separated, of {sorted(ALLOCATORS)}")
    parser.add_argument("--png", default="water_scale.png")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: host,variant,replicas -> JSON
    args = parser.parse_args()
    if args.single:
        host, variant, replicas = args.single.split(",")
        print(json.dumps(one_run(args.preset, host, variant, int(replicas), args.repeats)))
        return
    allocators = args.allocators.split(",")
    unknown = sorted(set(allocators) - set(ALLOCATORS))
    if unknown:
        parser.error(f"unknown allocators {unknown}; known: {sorted(ALLOCATORS)}")

    hosts = [e["host"] for e in preset_hosts(args.preset, args.hosts)[0]]
    sizes = [int(r) for r in args.replicas.split(",")]
    print(
        f"water boxes {', '.join(str(192 * r**3) for r in sizes)} atoms; preset {args.preset}; threads={torch.get_num_threads()}; "
        f"allocators {', '.join(allocators)}",
        flush=True,
    )
    results = []
    for replicas in sizes:
        for host in hosts:
            for variant in ("bare", "freecg"):
                for allocator in allocators:
                    command = [sys.executable, __file__, "--preset", args.preset, "--repeats", str(args.repeats)]
                    command += ["--single", f"{host},{variant},{replicas}"]
                    environment = {**os.environ, **ALLOCATORS[allocator]}
                    done = subprocess.run(command, capture_output=True, text=True, env=environment)
                    if done.returncode != 0:
                        print(
                            f"{host} {variant} {192 * replicas**3} atoms ({allocator}): failed (exit status {done.returncode}; -9: killed, e.g. out of memory)\n{done.stderr[-1500:]}",
                            flush=True,
                        )
                        continue
                    r = dict(json.loads(done.stdout.strip().splitlines()[-1]), allocator=allocator)
                    results.append(r)
                    print(
                        f"{r['atoms']:>7} atoms {r['edges']:>9} edges  {host:>8} {'+ FreeCG' if variant == 'freecg' else 'bare':>8} "
                        f"{allocator:>8}: {1e3 * r['seconds']:9.1f} ms  {1e6 * r['seconds'] / r['atoms']:7.1f} us/atom  "
                        f"peak {r['peak_bytes'] / 2**20:8.1f} MiB ({r['peak_bytes'] / r['atoms'] / 1024:6.1f} KiB/atom)  "
                        f"neighbour list {1e3 * r['neighbour_seconds']:7.1f} ms",
                        flush=True,
                    )
    plot(results, Path(args.png))
    for allocator in allocators:
        summary(results, hosts, allocator)
    print(f"curves: {args.png}")


if __name__ == "__main__":
    main()
