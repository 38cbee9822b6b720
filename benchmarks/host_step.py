"""Training-step and inference time of every host, bare and with FreeCG, side by side in one run.

    python benchmarks/host_step.py [--preset quick] [--batch 10] [--repeats 7] [--hosts painn,so3net]

Hosts and sizes are those of a ``freecg compare`` preset (default ``quick``); the batch is the first
``--batch`` frames of rMD17 aspirin (split 01, the shipped copy or ``freecg data fetch``). A training
step is what the trainer does: energy, forces by autograd with ``create_graph``, an energy + force
loss and its backward (second derivatives through the group CG). Inference is what MD and
evaluation run: energy and forces, no ``create_graph``. float32, CPU. Each host + FreeCG model is
timed twice, with the group CG run by the compiled kernel and by the torch contraction
(``GroupCGTransform.kernel``), interleaved with the bare host in every round; medians printed.

The last lines are machine-readable, one per host: ``cost <host> train=1.08x infer=1.04x``
(host + FreeCG as built by default, i.e. with the kernel, over the bare host).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from freecg_plugin.atomistic import GraphBatch, collate, evaluate
from freecg_plugin.compare import preset_path
from freecg_plugin.configs import read_yaml_mapping
from freecg_plugin.data import load_rmd17_split, locate
from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host
from freecg_plugin.nn import GroupCGTransform


def set_kernel(model: torch.nn.Module, kernel: str) -> int:
    """Set every group CG's implementation; returns how many there are."""
    modules = [m for m in model.modules() if isinstance(m, GroupCGTransform)]
    for module in modules:
        module.kernel = kernel
    return len(modules)


def aspirin_batch(size: int, cutoff: float) -> tuple[GraphBatch, torch.Tensor, torch.Tensor]:
    """The first ``size`` frames of rMD17 aspirin (split 01) as a float32 graph, energies, forces."""
    train, _ = load_rmd17_split(locate("rmd17/aspirin", "01") / "rmd17", "aspirin", "01")
    graph = collate(train.structures[:size], cutoff)
    graph.positions, graph.cell, graph.shifts = graph.positions.float(), graph.cell.float(), graph.shifts.float()
    return graph, train.energy[:size].float(), torch.cat(train.forces[:size]).float()


def preset_hosts(preset: str, hosts: str | None) -> tuple[list[dict], float]:
    """A ``freecg compare`` preset's host entries (``hosts``: a comma-separated subset) and cutoff."""
    plan = read_yaml_mapping(preset_path(preset), "preset")
    wanted = None if hosts is None else set(hosts.split(","))
    return [e for e in plan["hosts"] if wanted is None or e["host"] in wanted], float(plan["cutoff"])


def build_model(entry: dict, cutoff: float, elements: list[int], with_freecg: bool, energy_mean: float = 0.0, energy_std: float = 1.0):
    """A preset host entry, bare or with FreeCG, from seed 0 (both start from the same host weights)."""
    torch.manual_seed(0)
    freecg = dict(entry["freecg"]) if with_freecg else None
    return build_host(
        ModelConfig(entry["host"], dict(entry.get("args", {})), cutoff, freecg), HostStatistics(elements, energy_mean, energy_std)
    )


def build_pair(entry: dict, cutoff: float, graph: GraphBatch, energy: torch.Tensor) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A preset host entry built bare and with FreeCG, from the same seed."""
    elements = sorted(set(graph.numbers.tolist()))
    return tuple(build_model(entry, cutoff, elements, f, float(energy.mean()), float(energy.std())) for f in (False, True))


def train_step(model: torch.nn.Module, graph: GraphBatch, energy: torch.Tensor, forces: torch.Tensor) -> None:
    """What the trainer does per batch: energy, forces with ``create_graph``, loss, backward."""
    out = evaluate(model, graph, forces=True, training=True)
    loss = 0.05 * (out["energy"] - energy).square().mean() + 0.95 * (out["forces"] - forces).square().mean()
    loss.backward()


def infer(model: torch.nn.Module, graph: GraphBatch, energy: torch.Tensor, forces: torch.Tensor) -> None:
    """What MD and evaluation do: energy and forces, no second derivatives."""
    evaluate(model, graph, forces=True, training=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--hosts", default=None, help="comma-separated subset of the preset's hosts")
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
                f"{entry['host']:>8} {label:>15}: bare {m['bare']:7.1f} ms   + FreeCG {m['kernel']:7.1f} ms (kernel) "
                f"{m['torch']:7.1f} ms (torch contraction)   FreeCG cost x{m['kernel'] / m['bare']:.2f} "
                f"(x{m['torch'] / m['bare']:.2f} with the torch contraction)",
                flush=True,
            )
        costs.append((entry["host"], ms["train"]["kernel"] / ms["train"]["bare"], ms["infer"]["kernel"] / ms["infer"]["bare"]))
    for host, train, inference in costs:
        print(f"cost {host} train={train:.2f}x infer={inference:.2f}x")


if __name__ == "__main__":
    main()
