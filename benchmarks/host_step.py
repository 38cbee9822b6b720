"""Training-step and inference time of every host, bare and with FreeCG, side by side in one run.

    python benchmarks/host_step.py [--preset quick] [--batch 10] [--repeats 7] [--hosts painn,so3net]

Hosts and sizes are those of a ``freecg compare`` preset (default ``quick``); the batch is the first
``--batch`` frames of rMD17 aspirin (split 01, the shipped copy or ``freecg data fetch``). A training
step is what the trainer does: energy, forces by autograd with ``create_graph``, an energy + force
loss and its backward (second derivatives through the group CG). Inference is what MD and
evaluation run: energy and forces, no ``create_graph``. float32, CPU. Each host + FreeCG model is
timed twice, with the group CG run by the compiled kernel and by the torch contraction
(``GroupCGTransform.kernel``), interleaved with the bare host in every round; medians printed.

The last lines are machine-readable, one per host entry: ``cost <host> train=1.08x infer=1.04x``
(the entry's ``label``, spaces as ``_``, where it has one)
(host + FreeCG as built by default, i.e. with the kernel, over the bare host).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import aspirin_batch, build_pair, host_arguments, infer, preset_hosts, set_kernel, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    host_arguments(parser)
    args = parser.parse_args()

    entries, cutoff = preset_hosts(args.preset, args.hosts)
    graph, energy, forces = aspirin_batch(args.batch, cutoff)
    print(
        f"batch: {args.batch} aspirin frames, {graph.numbers.numel()} atoms, {graph.edge_index.shape[1]} edges; "
        f"threads={torch.get_num_threads()}",
        flush=True,
    )
    costs = []
    for entry in entries:
        title = entry.get("label", entry["host"]).replace(" ", "_")
        bare, freecg = build_pair(entry, cutoff, graph, energy)
        assert set_kernel(freecg, "auto") > 0
        runs = {"bare": (bare, None), "kernel": (freecg, "auto"), "torch": (freecg, "torch")}
        ms = {}
        for what, fn in (("train", train_step), ("infer", infer)):
            times = {name: [] for name in runs}
            for rnd in range(args.repeats + 1):  # round 0 warms up
                for name, (model, kernel) in runs.items():
                    if kernel is not None:
                        set_kernel(model, kernel)
                    start = time.perf_counter()
                    fn(model, graph, energy, forces)
                    if rnd:
                        times[name].append(time.perf_counter() - start)
            ms[what] = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        set_kernel(freecg, "auto")
        for what, label in (("train", "train step"), ("infer", "energy + forces")):
            m = ms[what]
            print(
                f"{title:>8} {label:>15}: bare {m['bare']:7.1f} ms   + FreeCG {m['kernel']:7.1f} ms (kernel) "
                f"{m['torch']:7.1f} ms (torch contraction)   FreeCG cost x{m['kernel'] / m['bare']:.2f} "
                f"(x{m['torch'] / m['bare']:.2f} with the torch contraction)",
                flush=True,
            )
        costs.append((title, ms["train"]["kernel"] / ms["train"]["bare"], ms["infer"]["kernel"] / ms["infer"]["bare"]))
    for name, train, inference in costs:
        print(f"cost {name} train={train:.2f}x infer={inference:.2f}x")


if __name__ == "__main__":
    main()
