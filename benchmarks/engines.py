"""MD speed of one trained model through every engine it reaches, side by side in one run: ``freecg
md`` (the command), ASE with ``FreeCGCalculator``, ASE with the metatomic export
(``metatomic-ase``), TorchSim with our model and with the metatomic export
(``metatomic-torchsim``), OpenMM (``MLPotential("freecg")``) and i-PI (server + its metatomic
driver over a UNIX socket). NVE velocity Verlet, 0.5 fs, float64, on frame 0 of the model's
training data (i-PI in a box of ``--box`` Å for a molecule: its driver treats a cell as periodic).

    .venv/bin/python benchmarks/engines.py runs/small/checkpoints/best.ckpt --steps 200 --rounds 3

In-process engines are timed over ``--steps`` steps after a warm-up; the two commands (``freecg md``
and i-PI) by the difference between a run of ``5 * --steps`` steps and one of ``--steps``, so that
start-up is left out. Every round runs every engine (in turn). First, each in-process engine's
energy and forces on the start structure against the ASE calculator's (``agreement ...``); the
last lines are machine-readable: ``engine <name> ms_per_step=<median> range=<min>-<max> ns_per_day=<median>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch
from ase import units
from ase.md.verlet import VelocityVerlet

from freecg_plugin.integrations import FreeCGCalculator
from freecg_plugin.md import load_structure

TIMESTEP_FS = 0.5
BIN = Path(sys.executable).parent


def _ase(atoms, calculator) -> Callable[[int], None]:
    atoms = atoms.copy()
    atoms.calc = calculator
    dynamics = VelocityVerlet(atoms, timestep=TIMESTEP_FS * units.fs)
    return dynamics.run


def _torchsim(atoms, model) -> Callable[[int], None]:
    import torch_sim as ts

    state = ts.initialize_state([atoms], torch.device("cpu"), torch.float64)
    state.rng = 1
    kT = torch.tensor(300.0 * ts.units.MetalUnits.temperature, dtype=torch.float64)
    dt = torch.tensor(TIMESTEP_FS * 1e-3 * ts.units.MetalUnits.time, dtype=torch.float64)
    md = [ts.nve_init(state, model, kT=kT)]

    def run(steps: int) -> None:
        for _ in range(steps):
            md[0] = ts.nve_step(md[0], model, dt=dt)

    return run


def _openmm_context(atoms, model_path: str):
    import openmm
    from openmm import app, unit
    from openmmml import MLPotential

    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for k, z in enumerate(atoms.numbers):
        topology.addAtom(f"A{k}", app.Element.getByAtomicNumber(int(z)), residue)
    if atoms.pbc.all():
        topology.setPeriodicBoxVectors(np.asarray(atoms.cell) * 0.1)
    system = MLPotential("freecg", model=model_path).createSystem(topology)
    context = openmm.Context(
        system, openmm.VerletIntegrator(TIMESTEP_FS * unit.femtosecond), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(atoms.positions * 0.1)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return context


def _openmm(atoms, model_path: str) -> Callable[[int], None]:
    context = _openmm_context(atoms, model_path)

    def run(steps: int) -> None:
        context.getIntegrator().step(steps)  # the closure keeps the context (and its integrator) alive

    return run


def _energy_forces(engine: str, atoms, safe: str, exported: str) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of ``atoms`` from one in-process engine."""
    if engine in ("ase", "ase_metatomic"):
        from metatomic_ase import MetatomicCalculator

        atoms = atoms.copy()
        atoms.calc = FreeCGCalculator(safe) if engine == "ase" else MetatomicCalculator(exported, device="cpu")
        return atoms.get_potential_energy(), atoms.get_forces()
    if engine in ("torchsim", "torchsim_metatomic"):
        import torch_sim as ts
        from metatomic_torchsim import MetatomicModel

        from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel

        model = FreeCGTorchSimModel(safe) if engine == "torchsim" else MetatomicModel(exported, device="cpu")
        out = model(ts.initialize_state([atoms], torch.device("cpu"), torch.float64))
        return float(out["energy"][0]), out["forces"].detach().numpy()
    from openmm import unit

    context = _openmm_context(atoms, safe)
    state = context.getState(getEnergy=True, getForces=True)
    kj_per_ev = 96.48533212331
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / kj_per_ev
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) / kj_per_ev / 10.0
    return energy, np.asarray(forces)


def _command_seconds(command: Callable[[int, Path], None], steps: int) -> float:
    """Seconds per step of a command, from a run of ``5 * steps`` and one of ``steps`` (start-up cancels)."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        command(5 * steps, Path(folder) / "long")
        long = time.perf_counter() - start
        start = time.perf_counter()
        command(steps, Path(folder) / "short")
        short = time.perf_counter() - start
    return (long - short) / (4 * steps)


def _freecg_md(checkpoint: str) -> Callable[[int, Path], None]:
    def run(steps: int, folder: Path) -> None:
        time_ps = steps * TIMESTEP_FS * 1e-3
        done = subprocess.run(
            [str(BIN / "freecg"), "md", "--checkpoint", checkpoint, "--output", str(folder), "--ensemble", "nve", "--keep-going"]
            + ["--time", f"{time_ps:g}", "--timestep", f"{TIMESTEP_FS:g}", "--quiet"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        ran = json.loads((folder / "summary.json").read_text())["steps"]
        if ran != steps:  # it stopped early (an exploding model): its time per step is not comparable
            raise RuntimeError(f"freecg md ran {ran} of {steps} steps (the model is not stable); leave it out with --engines")

    return run


IPI_INPUT = """<simulation verbosity='quiet' safe_stride='100000'>
  <output prefix='run'><properties stride='100000' filename='out'> [ step ] </properties></output>
  <total_steps>{steps}</total_steps>
  <prng><seed>1</seed></prng>
  <ffsocket name='model' mode='unix' pbc='true'><address>{address}</address><latency>1e-4</latency></ffsocket>
  <system>
    <initialize nbeads='1'><file mode='xyz' units='angstrom'> init.xyz </file><velocities mode='thermal' units='kelvin'> 300 </velocities></initialize>
    <forces><force forcefield='model'/></forces>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'> {timestep} </timestep></dynamics></motion>
  </system>
</simulation>
"""


def _ipi(atoms, metatomic_path: str, box: float) -> Callable[[int, Path], None]:
    atoms = atoms.copy()
    if not atoms.pbc.all():
        atoms.set_cell([box, box, box])
        atoms.center()
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    xyz = [str(len(atoms)), f"# CELL(abcABC): {a} {b} {c} {alpha} {beta} {gamma} cell{{angstrom}} positions{{angstrom}}"]
    xyz += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]

    def run(steps: int, folder: Path) -> None:
        folder.mkdir(parents=True)
        address = f"bench{folder.name}{int(time.time() * 1e3) % 100000}"
        (folder / "init.xyz").write_text("\n".join(xyz) + "\n")
        (folder / "input.xml").write_text(IPI_INPUT.format(steps=steps, address=address, timestep=TIMESTEP_FS))
        server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not Path(f"/tmp/ipi_{address}").exists():
            if server.poll() is not None:
                raise RuntimeError("i-PI stopped before opening its socket")
            time.sleep(0.05)
        subprocess.run(
            [str(BIN / "i-pi-py_driver"), "-u", "-a", address, "-m", "metatomic", "-o", f"template=init.xyz,model={metatomic_path}"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        server.wait(timeout=600)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a freecg train checkpoint or model file (PaiNN or SO3net for the metatomic engines)")
    parser.add_argument("--steps", type=int, default=200, help="MD steps per engine per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--box", type=float, default=30.0, help="i-PI's box for a molecule (Å)")
    parser.add_argument("--engines", default=None, help="comma-separated subset of the engines")
    args = parser.parse_args()

    from freecg_plugin.checkpoint import export_model
    from freecg_plugin.integrations.metatomic import export_metatomic
    from freecg_plugin.integrations.torchsim import FreeCGTorchSimModel

    folder = Path(tempfile.mkdtemp(prefix="engines"))
    safe = str(export_model(args.checkpoint, folder / "model.freecg"))
    exported = str(export_metatomic(args.checkpoint, folder / "model.pt"))
    calculator = FreeCGCalculator(safe)
    atoms = load_structure(None, 0, calculator.config.data)
    print(
        f"{len(atoms)} atoms, torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {args.steps} steps x {args.rounds} rounds"
    )
    print(f"files: .freecg {Path(safe).stat().st_size / 1024:.0f} KiB, metatomic {Path(exported).stat().st_size / 1024:.0f} KiB")

    from metatomic_ase import MetatomicCalculator
    from metatomic_torchsim import MetatomicModel

    in_process: Dict[str, Callable[[], Callable[[int], None]]] = {
        "ase": lambda: _ase(atoms, calculator),
        "ase_metatomic": lambda: _ase(atoms, MetatomicCalculator(exported, device="cpu")),
        "torchsim": lambda: _torchsim(atoms, FreeCGTorchSimModel(safe)),
        "torchsim_metatomic": lambda: _torchsim(atoms, MetatomicModel(exported, device="cpu")),
        "openmm": lambda: _openmm(atoms, safe),
    }
    commands: Dict[str, Callable[[int, Path], None]] = {"freecg_md": _freecg_md(safe), "ipi_metatomic": _ipi(atoms, exported, args.box)}
    chosen = set(args.engines.split(",")) if args.engines else set(in_process) | set(commands)
    energy, forces = _energy_forces("ase", atoms, safe, exported)
    for engine in [e for e in in_process if e in chosen and e != "ase"]:
        e, f = _energy_forces(engine, atoms, safe, exported)
        print(f"agreement {engine} vs ase: |dE|={abs(e - energy):.2e} eV max|dF|={np.abs(f - forces).max():.2e} eV/A")
    runners = {name: make() for name, make in in_process.items() if name in chosen}
    for run in runners.values():
        run(5)  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in [*runners, *(c for c in commands if c in chosen)]}
    for k in range(args.rounds):
        for name in times:
            if name in runners:
                start = time.perf_counter()
                runners[name](args.steps)
                seconds = (time.perf_counter() - start) / args.steps
            else:
                seconds = _command_seconds(commands[name], args.steps)
            times[name].append(1e3 * seconds)
        print(f"round {k + 1}: " + ", ".join(f"{name} {t[-1]:.2f}" for name, t in times.items()) + " ms/step", flush=True)
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"engine {name} ms_per_step={median:.2f} range={min(values):.2f}-{max(values):.2f} ns_per_day={TIMESTEP_FS * 86.4 / median:.3g}"
        )


if __name__ == "__main__":
    main()
