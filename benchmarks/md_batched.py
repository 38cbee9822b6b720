"""Batched MD throughput: replicas integrated at once by TorchSim (``FreeCGTorchSimModel``) against
one structure at a time in ASE (``freecg md``'s path), side by side in one run, per checkpoint.

    .venv/bin/python benchmarks/md_batched.py HOST.ckpt FREECG.ckpt --replicas 1,4,16 --steps 50 --rounds 3

Velocity Verlet at 0.5 fs from frame 0 of each checkpoint's training data (300 K), float64. Prints
ms per step and replica-steps per second of each mode, the speed-up of batching over ASE, and a
machine-readable last block (``batched <host>[+freecg] replicas=R speedup=..x``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch_sim as ts
from ase import units
from ase.md.verlet import VelocityVerlet

from freecg_plugin.integrations import FreeCGCalculator
from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel
from freecg_plugin.md import MDConfig, initial_velocities, load_structure


def _ase_ms_per_step(checkpoint: str, steps: int) -> float:
    calculator = FreeCGCalculator(checkpoint)
    atoms = load_structure(None, 0, calculator.config.data)
    initial_velocities(atoms, MDConfig(checkpoint=checkpoint, output=""))
    atoms.calc = calculator
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dynamics.run(5)  # warm-up
    start = time.perf_counter()
    dynamics.run(steps)
    return 1000.0 * (time.perf_counter() - start) / steps


def _batched_ms_per_step(model: FreeCGTorchSimModel, replicas: int, steps: int) -> float:
    atoms = load_structure(None, 0, model.config.data)
    state = ts.initialize_state([atoms] * replicas, torch.device("cpu"), torch.float64)
    kT = torch.tensor(300.0 * ts.units.MetalUnits.temperature, dtype=torch.float64)
    dt = torch.tensor(0.0005 * ts.units.MetalUnits.time, dtype=torch.float64)
    md = ts.nve_init(state, model, kT=kT)
    for _ in range(5):  # warm-up
        md = ts.nve_step(md, model, dt=dt)
    start = time.perf_counter()
    for _ in range(steps):
        md = ts.nve_step(md, model, dt=dt)
    return 1000.0 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--replicas", default="1,4,16", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(r) for r in args.replicas.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {args.steps} steps x {args.rounds} rounds")
    last = []
    for checkpoint in args.checkpoints:
        model = FreeCGTorchSimModel(checkpoint)
        name = model.config.model.host + ("+freecg" if model.config.model.freecg else "")
        ase_ms, batched = [], {r: [] for r in sizes}
        for _ in range(args.rounds):  # the modes alternate within each round
            ase_ms.append(_ase_ms_per_step(checkpoint, args.steps))
            for r in sizes:
                batched[r].append(_batched_ms_per_step(model, r, args.steps))
        ase = np.median(ase_ms)
        print(f"{name}: ASE, 1 structure: {min(ase_ms):.2f}-{max(ase_ms):.2f} ms/step ({1000 / ase:.0f} steps/s)")
        for r in sizes:
            ms = np.median(batched[r])
            speedup = r * ase / ms
            print(
                f"{name}: TorchSim, {r} replicas: {min(batched[r]):.2f}-{max(batched[r]):.2f} ms/step, "
                f"{1000 * r / ms:.0f} replica-steps/s, x{speedup:.2f} over ASE"
            )
            last.append(f"batched {name} replicas={r} speedup={speedup:.2f}x")
    print("\n".join(last))


if __name__ == "__main__":
    main()
