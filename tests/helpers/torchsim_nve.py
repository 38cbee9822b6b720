"""TorchSim's velocity Verlet on a state, recording each step's total energy (the tests of energy
conservation through our TorchSim model and through metatomic-torchsim share it)."""

import numpy as np
import torch


def nve_totals(model, state, steps: int, temperature_K: float, timestep_ps: float, seed: int):
    """``(totals [steps, systems], last kinetic energies [systems])`` in eV, float64."""
    import torch_sim as ts

    state.rng = seed
    kT = torch.tensor(temperature_K * ts.units.MetalUnits.temperature, dtype=torch.float64)
    dt = torch.tensor(timestep_ps * ts.units.MetalUnits.time, dtype=torch.float64)
    md = ts.nve_init(state, model, kT=kT)
    totals = []
    for _ in range(steps):
        md = ts.nve_step(md, model, dt=dt)
        kinetic = ts.calc_kinetic_energy(masses=md.masses, momenta=md.momenta, system_idx=md.system_idx)
        totals.append((md.energy + kinetic).detach().numpy())
    return np.array(totals), kinetic.detach().numpy()
