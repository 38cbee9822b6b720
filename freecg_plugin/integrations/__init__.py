"""What connects a trained model to other programs: ASE (:class:`FreeCGCalculator`), TorchSim
(:mod:`freecg_plugin.integrations.torchsim`, batched replicas; needs ``torch-sim-atomistic``),
OpenMM (:mod:`freecg_plugin.integrations.openmm`, through openmmml), metatomic's engines
(:mod:`freecg_plugin.integrations.metatomic`: LAMMPS, i-PI, GROMACS, PLUMED; needs
``metatomic-torch``) and models of the nequip
framework compiled for ASE (:mod:`freecg_plugin.integrations.nequip`)."""

from .ase import FreeCGCalculator

__all__ = ["FreeCGCalculator"]
