"""The training-step cost of each FreeCG variant of a plan, against its bare host, side by side in one run.

    python benchmarks/variants.py [--preset variants] [--hosts painn,nequip] [--batch 10] [--repeats 7]

The plan's host entries are the variants (``label``, ``freecg``, ``freecg_layers``; default the
shipped ``variants`` screening plan); entries of one host share its bare model, built once. Every
round times the bare host and each of its variants in turn (interleaved, so that the machine's
drift hits all alike) on the first ``--batch`` frames of rMD17 aspirin; a training step is the
trainer's (energy, forces with ``create_graph``, loss, backward), float32, CPU, the group CG as
built (its compiled kernel). Medians over ``--repeats`` rounds after a warm-up round, and the
number of parameters.

The last lines are machine-readable, one per variant: ``cost <label> train=1.21x params=1.48x``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import aspirin_batch, host_arguments, preset_hosts, train_step

from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host


def _build(entry: dict, cutoff: float, elements: list[int], energy: torch.Tensor, with_freecg: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = ModelConfig(
        entry["host"],
        dict(entry.get("args", {})),
        cutoff,
        dict(entry.get("freecg") or {}) if with_freecg else None,
        entry.get("freecg_layers") if with_freecg else None,
    )
    return build_host(model, HostStatistics(elements, float(energy.mean()), float(energy.std())))


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    host_arguments(parser, preset="variants")
    args = parser.parse_args()

    entries, cutoff = preset_hosts(args.preset, args.hosts)
    graph, energy, forces = aspirin_batch(args.batch, cutoff)
    elements = sorted(set(graph.numbers.tolist()))
    print(f"batch: {args.batch} aspirin frames, {graph.edge_index.shape[1]} edges; threads={torch.get_num_threads()}", flush=True)
    costs = []
    for host in dict.fromkeys(e["host"] for e in entries):
        variants = [e for e in entries if e["host"] == host]
        bare = _build(variants[0], cutoff, elements, energy, False)
        models = {"bare": bare, **{e.get("label", host): _build(e, cutoff, elements, energy, True) for e in variants}}
        times: dict[str, list[float]] = {name: [] for name in models}
        for rnd in range(args.repeats + 1):  # round 0 warms up
            for name, model in models.items():
                start = time.perf_counter()
                train_step(model, graph, energy, forces)
                if rnd:
                    times[name].append(time.perf_counter() - start)
        base = statistics.median(times["bare"])
        for name, model in models.items():
            ms = statistics.median(times[name])
            spread = f"{1e3 * min(times[name]):.1f}-{1e3 * max(times[name]):.1f}"
            print(
                f"{name:>28}: train step {1e3 * ms:7.1f} ms (range {spread})  x{ms / base:.2f}   "
                f"{_parameters(model):>7} parameters (x{_parameters(model) / _parameters(bare):.2f})",
                flush=True,
            )
            if name != "bare":
                costs.append((name, ms / base, _parameters(model) / _parameters(bare)))
    for name, train, params in costs:
        print(f"cost {name.replace(' ', '_')} train={train:.2f}x params={params:.2f}x")


if __name__ == "__main__":
    main()
