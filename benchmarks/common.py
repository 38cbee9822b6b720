"""What the benchmark scripts share (they import it; none imports another script): a
``freecg compare`` preset's hosts built bare and with FreeCG, a batch of aspirin frames, the
trainer's training step and the inference step, peak resident memory, and the arguments that
choose hosts and sizes."""

from __future__ import annotations

import argparse
import resource
import threading

import torch

from freecg_plugin.atomistic import GraphBatch, collate, evaluate
from freecg_plugin.compare import preset_path
from freecg_plugin.configs import read_yaml_mapping
from freecg_plugin.data import load_rmd17_split, locate
from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host
from freecg_plugin.nn import GroupCGTransform


def host_arguments(parser: argparse.ArgumentParser, preset: str = "quick", batch: int = 10, repeats: int = 7) -> None:
    """``--preset``, ``--hosts``, ``--batch`` and ``--repeats``: which hosts, what batch, how often."""
    parser.add_argument("--preset", default=preset, help="the freecg compare plan whose hosts and sizes are timed")
    parser.add_argument("--hosts", default=None, help="comma-separated subset of the preset's hosts")
    parser.add_argument("--batch", type=int, default=batch, help="aspirin frames per batch")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed rounds (after a warm-up)")


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


def current_rss() -> int:
    """Resident memory of this process in bytes (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every millisecond in a thread
    (torch ops release the GIL, so the sampler runs while they do)."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = current_rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, current_rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())

    @property
    def bytes(self) -> int:
        return self.peak - self.base
