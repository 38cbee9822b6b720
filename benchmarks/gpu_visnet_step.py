"""The paper's model on a GPU: ViSNet bare, ViSNet + FreeCG (our torch contraction, also in a CPU
dry run: the compiled kernel is CPU-only) and ViSNet + FreeCG with the group CG in the authors' e3nn form, side by side in
one run, at the paper-like sizes of the ``full`` preset.

    python benchmarks/gpu_visnet_step.py                      # CUDA, preset full, batch 4
    python benchmarks/gpu_visnet_step.py --device cpu --preset quick --repeats 2   # a dry run anywhere

Times (medians over ``--repeats`` rounds, the variants interleaved in every round, CUDA synchronised)
a training step (energy, forces with ``create_graph``, loss, backward) and energy + forces, and
records peak GPU memory per variant. The last lines are machine-readable:
``gpu <variant> train_ms=.. infer_ms=.. train=..x infer=..x peak_mb=..`` (ratios over bare ViSNet).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import aspirin_batch, build_model, infer, preset_hosts, set_kernel, train_step

from freecg_plugin.nn import GroupCGTransform
from freecg_plugin.testing import e3nn_reference_group_cg


def with_e3nn_form(model: torch.nn.Module) -> int:
    """Run every group CG of ``model`` through the authors' e3nn form; returns how many."""
    modules = [m for m in model.modules() if isinstance(m, GroupCGTransform)]
    for module in modules:
        module.forward = e3nn_reference_group_cg(module)
    return len(modules)


def synchronised(device: torch.device, fn, *args) -> float:
    """Seconds ``fn(*args)`` takes, waiting for the device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="full")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    device = torch.device(args.device)
    (entry,), cutoff = preset_hosts(args.preset, "visnet")
    graph, energy, forces = aspirin_batch(args.batch, cutoff)
    elements = sorted(set(graph.numbers.tolist()))
    scale = (float(energy.mean()), float(energy.std()))
    variants = {
        "bare": build_model(entry, cutoff, elements, False, *scale),
        "freecg": build_model(entry, cutoff, elements, True, *scale),
        "freecg_e3nn": build_model(entry, cutoff, elements, True, *scale),
    }
    assert set_kernel(variants["freecg"], "torch") > 0  # the same implementation on every device
    assert with_e3nn_form(variants["freecg_e3nn"]) > 0
    for name, model in variants.items():
        variants[name] = model.to(device)
    graph, energy, forces = graph.to(device), energy.to(device), forces.to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; torch {torch.__version__}; preset {args.preset}: {args.batch} aspirin frames, {graph.edge_index.shape[1]} edges")
    ms, peak = {}, {}
    for what, fn in (("train", train_step), ("infer", infer)):
        times = {variant: [] for variant in variants}
        for rnd in range(args.repeats + 1):  # round 0 warms up
            for variant, model in variants.items():
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds = synchronised(device, fn, model, graph, energy, forces)
                if rnd:
                    times[variant].append(seconds)
                if device.type == "cuda" and what == "train":
                    peak[variant] = max(peak.get(variant, 0.0), torch.cuda.max_memory_allocated(device) / 2**20)
        ms[what] = {variant: 1e3 * statistics.median(t) for variant, t in times.items()}
        for variant, t in times.items():
            print(f"{what:>5} {variant:>12}: {1e3 * min(t):8.2f}-{1e3 * max(t):8.2f} ms (median {ms[what][variant]:.2f})")
    for variant in variants:
        train, inference = ms["train"][variant], ms["infer"][variant]
        print(
            f"gpu {variant} train_ms={train:.2f} infer_ms={inference:.2f} train={train / ms['train']['bare']:.2f}x "
            f"infer={inference / ms['infer']['bare']:.2f}x peak_mb={peak.get(variant, float('nan')):.0f}"
        )


if __name__ == "__main__":
    main()
