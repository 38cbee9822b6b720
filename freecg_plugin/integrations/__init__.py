"""What connects a trained model to other programs: ASE (:class:`FreeCGCalculator`), TorchSim
(:mod:`freecg_plugin.integrations.torchsim`, batched replicas; needs ``torch-sim-atomistic``),
OpenMM (:mod:`freecg_plugin.integrations.openmm`, through openmmml) and models of the nequip
framework compiled for ASE (:mod:`freecg_plugin.integrations.nequip`)."""

from .ase import FreeCGCalculator

__all__ = ["FreeCGCalculator"]
