"""FreeCG's cost per MD step (energy + forces through the ASE calculator, velocity Verlet), bare
host vs host + FreeCG, side by side in one run: rounds alternate the two models (and which goes first) so that both
meet the same machine state; every round's ratio is printed, then a machine-readable last block
(``md_cost <system> <ratio range>``).

    .venv/bin/python benchmarks/md_speed.py \\
        --system aspirin runs/md_aspirin_quick/host.ckpt runs/md_aspirin_quick/freecg.ckpt \\
        --system water HOST.ckpt FREECG.ckpt --steps 100 --rounds 5

Each model starts from frame 0 of its training data (the same frame for both members of a pair).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase import units
from ase.md.verlet import VelocityVerlet

from freecg_plugin.integrations import FreeCGCalculator
from freecg_plugin.md import MDConfig, load_structure


def _dynamics(checkpoint: str, dtype: torch.dtype, temperature: float) -> VelocityVerlet:
    from freecg_plugin.md import initial_velocities

    calculator = FreeCGCalculator(checkpoint, dtype=dtype)
    atoms = load_structure(None, 0, calculator.config.data)
    initial_velocities(atoms, MDConfig(checkpoint=checkpoint, output="", temperature=temperature))
    atoms.calc = calculator
    return VelocityVerlet(atoms, timestep=0.5 * units.fs)


def _ms_per_step(dynamics: VelocityVerlet, steps: int) -> float:
    start = time.perf_counter()
    dynamics.run(steps)
    return 1000.0 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", nargs=3, action="append", required=True, metavar=("NAME", "HOST_CKPT", "FREECG_CKPT"))
    parser.add_argument("--steps", type=int, default=100, help="MD steps per model per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--temperature", type=float, default=300.0)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, {args.steps} steps x {args.rounds} rounds")
    costs = {}
    for name, host_ckpt, freecg_ckpt in args.system:
        host, freecg = _dynamics(host_ckpt, dtype, args.temperature), _dynamics(freecg_ckpt, dtype, args.temperature)
        atoms = len(host.atoms)
        _ms_per_step(host, 10), _ms_per_step(freecg, 10)  # warm-up
        rows = []
        for k in range(args.rounds):
            if k % 2 == 0:  # alternate which model goes first
                pair = (_ms_per_step(host, args.steps), _ms_per_step(freecg, args.steps))
            else:
                pair = tuple(reversed((_ms_per_step(freecg, args.steps), _ms_per_step(host, args.steps))))
            rows.append(pair)
            print(
                f"{name} ({atoms} atoms) round {k + 1}: host {pair[0]:.2f} ms/step, + FreeCG {pair[1]:.2f} ms/step, x{pair[1] / pair[0]:.3f}"
            )
        rows = np.array(rows)
        ratios = rows[:, 1] / rows[:, 0]
        costs[name] = (ratios.min(), np.median(ratios), ratios.max())
        ns_day = 0.5e-6 * 86400e3 / rows
        print(
            f"{name}: host {rows[:, 0].min():.2f}-{rows[:, 0].max():.2f} ms/step ({ns_day[:, 0].min():.3g}-{ns_day[:, 0].max():.3g} ns/day), "
            f"+ FreeCG {rows[:, 1].min():.2f}-{rows[:, 1].max():.2f} ms/step ({ns_day[:, 1].min():.3g}-{ns_day[:, 1].max():.3g} ns/day)"
        )
    for name, (low, mid, high) in costs.items():
        print(f"md_cost {name} {low:.3f}-{high:.3f}x median={mid:.3f}x")


if __name__ == "__main__":
    main()
