"""Where FreeCG's added time goes, per host: phases, operators and the FLOP floor.

    python benchmarks/profile_freecg.py [--preset quick] [--hosts painn,so3net] [--batch 10] [--repeats 5] [--top 12]

For each host of a ``freecg compare`` preset, bare and with FreeCG (same seed), on the first
``--batch`` rMD17 aspirin frames (split 01), float32, CPU:

1. **Phases** (medians over ``--repeats`` interleaved rounds): the forward pass (energy), the first
   derivative (forces with ``create_graph``), the training backward (energy + force loss, so the
   second derivatives), and the inference path (energy and forces, no ``create_graph``).
2. **Operators**: ``torch.profiler`` self CPU time per operator, bare and with FreeCG, over the same
   training steps; printed sorted by what FreeCG adds (our group CG kernel appears as ``_Forward``
   and ``_Backward``, its autograd functions).
3. **FLOP floor**: matrix-product FLOPs of one training step counted by ``FlopCounterMode`` (the
   group CG by its torch contraction, whose products are all counted), bare and with FreeCG. Their
   ratio is the least FreeCG could cost if every FLOP ran at the same rate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
from common import aspirin_batch, build_pair, host_arguments, preset_hosts, set_kernel, train_step
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from freecg_plugin.atomistic import evaluate


def phases(model, graph, energy, forces) -> dict[str, float]:
    """Seconds of each phase of one training step, and of one inference call."""
    seconds = {}
    start = time.perf_counter()
    positions = graph.positions.detach().requires_grad_(True)
    src, dst = graph.edge_index
    edge_vec = positions[src] - positions[dst]
    e = model(graph.numbers, positions, graph.batch, graph.edge_index, edge_vec, graph.num_graphs)
    seconds["forward"] = time.perf_counter() - start
    start = time.perf_counter()
    (grad,) = torch.autograd.grad(e.sum(), positions, create_graph=True)
    seconds["forces (create_graph)"] = time.perf_counter() - start
    start = time.perf_counter()
    loss = 0.05 * (e - energy).square().mean() + 0.95 * (grad + forces).square().mean()
    loss.backward()
    seconds["loss backward"] = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(model, graph, forces=True, training=False)
    seconds["inference (energy + forces)"] = time.perf_counter() - start
    return seconds


def operator_times(model, graph, energy, forces, repeats: int) -> dict[str, float]:
    """Self CPU milliseconds per operator and training step."""
    train_step(model, graph, energy, forces)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            train_step(model, graph, energy, forces)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[event.key] += event.self_cpu_time_total / 1e3 / repeats
    return totals


def matmul_flops(model, graph, energy, forces) -> int:
    set_kernel(model, "torch")
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, graph, energy, forces)
    set_kernel(model, "auto")
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    host_arguments(parser, repeats=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    entries, cutoff = preset_hosts(args.preset, args.hosts)
    graph, energy, forces = aspirin_batch(args.batch, cutoff)
    print(
        f"preset {args.preset}: {args.batch} aspirin frames, {graph.numbers.numel()} atoms, {graph.edge_index.shape[1]} edges; threads={torch.get_num_threads()}"
    )
    for entry in entries:
        bare, freecg = build_pair(entry, cutoff, graph, energy)
        models = {"bare": bare, "freecg": freecg}
        times = {name: defaultdict(list) for name in models}
        for rnd in range(args.repeats + 1):
            for name, model in models.items():
                for phase, seconds in phases(model, graph, energy, forces).items():
                    if rnd:
                        times[name][phase].append(seconds)
        print(f"\n== {entry['host']} ({args.preset}) ==")
        print(f"{'phase':<30} {'bare ms':>9} {'+ FreeCG ms':>12} {'added ms':>9} {'ratio':>6}")
        for phase in times["bare"]:
            b, f = (1e3 * statistics.median(times[n][phase]) for n in models)
            print(f"{phase:<30} {b:9.1f} {f:12.1f} {f - b:9.1f} {f / b:6.2f}")

        ops = {name: operator_times(model, graph, energy, forces, args.repeats) for name, model in models.items()}
        added = sorted(
            ((ops["freecg"].get(k, 0.0) - ops["bare"].get(k, 0.0), k) for k in set(ops["bare"]) | set(ops["freecg"])), reverse=True
        )
        total_b, total_f = sum(ops["bare"].values()), sum(ops["freecg"].values())
        print(
            f"operators (self CPU ms per training step; total bare {total_b:.1f}, + FreeCG {total_f:.1f}, added {total_f - total_b:.1f}):"
        )
        for diff, key in added[: args.top]:
            print(f"  {key:<48} bare {ops['bare'].get(key, 0.0):8.2f}   + FreeCG {ops['freecg'].get(key, 0.0):8.2f}   added {diff:+8.2f}")

        flops_b, flops_f = (matmul_flops(m, graph, energy, forces) for m in (bare, freecg))
        print(
            f"matrix-product FLOPs per training step: bare {flops_b / 1e9:.3f} G, + FreeCG {flops_f / 1e9:.3f} G "
            f"(FLOP floor x{flops_f / flops_b:.3f})"
        )


if __name__ == "__main__":
    main()
