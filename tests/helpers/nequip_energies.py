"""Print the energies (JSON list) of the frames in an extxyz file under a saved nequip model.

Usage: python nequip_energies.py MODEL FRAMES.xyz, MODEL a checkpoint, a ``.nequip.zip`` package
or a ``.nequip.pt2`` compiled model. Run as a subprocess by tests/test_nequip_workflow.py, also
in an environment where freecg-plugin is not importable (then the package must carry it).
"""

import json
import sys

import ase.io
from nequip.integrations.ase import NequIPCalculator

model, frames = sys.argv[1], sys.argv[2]
if model.endswith(".nequip.pt2"):
    calculator = NequIPCalculator.from_compiled_model(model, device="cpu")
else:
    calculator = NequIPCalculator._from_saved_model(model, device="cpu")
energies = []
for atoms in ase.io.read(frames, index=":"):
    atoms.calc = calculator
    energies.append(float(atoms.get_potential_energy()))
importable = True
try:
    import freecg_plugin  # noqa: F401
except ImportError:
    importable = False
print(json.dumps({"energies": energies, "freecg_plugin_importable": importable}))
