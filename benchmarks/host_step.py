"""Training-step time of every host, bare and with FreeCG, side by side in one run.

    python benchmarks/host_step.py [--batch 10] [--repeats 7] [--preset quick]

Hosts and sizes are those of a ``freecg compare`` preset (default ``quick``); the batch is the first
``--batch`` frames of rMD17 aspirin (split 01, the shipped copy or ``freecg data fetch``). One step is what
the trainer does: energy, forces by autograd with ``create_graph``, an energy + force loss and its
backward (second derivatives through the group CG), float32, CPU. Each host + FreeCG model is
timed twice, with the group CG run by the compiled kernel and by the torch contraction
(``GroupCGTransform.kernel``), interleaved with the bare host in every round; medians printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from freecg_plugin.atomistic import collate, evaluate
from freecg_plugin.data import load_rmd17_split, locate
from freecg_plugin.nn import GroupCGTransform
from freecg_plugin.training.compare import preset_path
from freecg_plugin.training.config import read_yaml_mapping
from freecg_plugin.training.hosts import build_host


def set_kernel(model: torch.nn.Module, kernel: str) -> int:
    """Set every group CG's implementation; returns how many there are."""
    modules = [m for m in model.modules() if isinstance(m, GroupCGTransform)]
    for module in modules:
        module.kernel = kernel
    return len(modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    plan = read_yaml_mapping(preset_path(args.preset), "preset")
    cutoff = float(plan["cutoff"])
    train, _ = load_rmd17_split(locate("rmd17/aspirin", "01") / "rmd17", "aspirin", "01")
    graph = collate(train.structures[: args.batch], cutoff)
    graph.positions, graph.cell, graph.shifts = graph.positions.float(), graph.cell.float(), graph.shifts.float()
    energy = train.energy[: args.batch].float()
    forces = torch.cat(train.forces[: args.batch]).float()
    elements = sorted(set(graph.numbers.tolist()))
    print(
        f"batch: {args.batch} aspirin frames, {graph.numbers.numel()} atoms, {graph.edge_index.shape[1]} edges; "
        f"threads={torch.get_num_threads()}",
        flush=True,
    )

    def step(model: torch.nn.Module) -> None:
        out = evaluate(model, graph, forces=True, training=True)
        loss = 0.05 * (out["energy"] - energy).square().mean() + 0.95 * (out["forces"] - forces).square().mean()
        loss.backward()

    for entry in plan["hosts"]:
        common = dict(
            args=entry.get("args", {}),
            cutoff=cutoff,
            freecg_layers=None,
            elements=elements,
            energy_mean=float(energy.mean()),
            energy_std=float(energy.std()),
        )
        torch.manual_seed(0)
        bare = build_host(entry["host"], freecg=None, **common)
        torch.manual_seed(0)
        freecg = build_host(entry["host"], freecg=dict(entry["freecg"]), **common)
        assert set_kernel(freecg, "auto") > 0
        runs = {"bare": (bare, None), "kernel": (freecg, "auto"), "torch": (freecg, "torch")}
        times = {name: [] for name in runs}
        for rnd in range(args.repeats + 1):  # round 0 warms up
            for name, (model, kernel) in runs.items():
                if kernel is not None:
                    set_kernel(model, kernel)
                start = time.perf_counter()
                step(model)
                if rnd:
                    times[name].append(time.perf_counter() - start)
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        print(
            f"{entry['host']:>8}: bare {ms['bare']:7.1f} ms   + FreeCG {ms['kernel']:7.1f} ms (kernel) "
            f"{ms['torch']:7.1f} ms (torch contraction)   FreeCG cost x{ms['kernel'] / ms['bare']:.2f} "
            f"(x{ms['torch'] / ms['bare']:.2f} with the torch contraction)",
            flush=True,
        )


if __name__ == "__main__":
    main()
