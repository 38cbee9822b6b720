"""Training throughput with and without the per-frame neighbour-list cache, side by side in one run.

    python benchmarks/train_throughput.py [--preset quick] [--hosts painn,visnet] [--epochs 3] [--rounds 3]

Each host of a ``freecg compare`` preset (its data, optimiser and sizes), bare and with FreeCG, is
trained by ``freecg train`` (the library call, Lightning and all) for ``--epochs`` epochs with
``data.cache_graphs`` true (each frame's neighbour list built in its first batch and kept) and
false (built again for every batch, as before the cache), the four runs interleaved in every
round. Printed per host: seconds per epoch (median over rounds, the first round a warm-up),
epochs per hour, and the gain of the cache. The time to build every train and validation frame's
neighbour list once is printed too: that is what the cache saves per epoch, at most.

The last lines are machine-readable: ``throughput <host> <bare|freecg> cached=<epochs/h>
rebuilt=<epochs/h> gain=x<ratio>``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import tempfile
import time
from pathlib import Path

from freecg_plugin.atomistic import frame_graph
from freecg_plugin.compare import load_compare_config, plan, preset_path
from freecg_plugin.configs import TrainConfig
from freecg_plugin.data.splits import load_data
from freecg_plugin.training import train


def host_configs(preset: str, hosts: str | None) -> dict[str, dict[bool, dict]]:
    """Per preset host, its bare and + FreeCG ``freecg train`` configs as ``freecg compare`` builds
    them (seed 1, the equal-epochs runs)."""
    compare = load_compare_config(preset_path(preset), ["seeds=[1]", "budgets=[epochs]", "ablation=null"])
    wanted = None if hosts is None else set(hosts.split(","))
    configs: dict[str, dict[bool, dict]] = {}
    for run in plan(compare):
        host = run.config["model"]["host"]
        if wanted is None or host in wanted:
            configs.setdefault(host, {})[run.config["model"]["freecg"] is not None] = run.config
    return configs


def with_settings(config: dict, cache: bool, epochs: int, output: Path) -> TrainConfig:
    """``config`` with the cache switch, the epochs and the output folder."""
    config = copy.deepcopy(config)
    config["data"]["cache_graphs"], config["optim"]["max_epochs"], config["output"] = cache, epochs, str(output)
    return TrainConfig.from_dict(config)


def neighbour_list_seconds(config: TrainConfig) -> float:
    """Seconds to build the neighbour list of every train and validation frame once."""
    train_set, val_set, _ = load_data(config.data)
    start = time.perf_counter()
    for data in (train_set, val_set):
        for structure in data.structures:
            frame_graph(structure, config.model.cutoff)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--hosts", default=None, help="comma-separated subset of the preset's hosts")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four runs; the first is a warm-up")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the first round is a warm-up)")

    lines = []
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as scratch:
        for host, configs in host_configs(args.preset, args.hosts).items():
            nl = neighbour_list_seconds(with_settings(configs[False], True, args.epochs, Path(scratch)))
            seconds = {(f, c): [] for f in (False, True) for c in (True, False)}
            for rnd in range(args.rounds):
                for (with_freecg, cache), times in seconds.items():
                    output = Path(scratch) / f"{host}_{with_freecg}_{cache}_{rnd}"
                    config = with_settings(configs[with_freecg], cache, args.epochs, output)
                    with contextlib.redirect_stdout(io.StringIO()):
                        result = train(config)
                    if rnd:
                        times.append(result["seconds_per_epoch"])
            print(f"{host}: neighbour lists of all train + validation frames, built once: {nl:.2f} s", flush=True)
            for with_freecg in (False, True):
                cached = statistics.median(seconds[with_freecg, True])
                rebuilt = statistics.median(seconds[with_freecg, False])
                name = "freecg" if with_freecg else "bare"
                print(
                    f"  {host} {name:>6}: {cached:6.2f} s/epoch cached ({3600 / cached:7.0f} epochs/h), "
                    f"{rebuilt:6.2f} s/epoch rebuilt ({3600 / rebuilt:7.0f} epochs/h): cache x{rebuilt / cached:.2f}",
                    flush=True,
                )
                lines.append(
                    f"throughput {host} {name} cached={3600 / cached:.0f} rebuilt={3600 / rebuilt:.0f} gain=x{rebuilt / cached:.2f}"
                )
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
