"""Module paths of earlier releases still import, give the objects of their new home and warn
once (a fresh interpreter, so that no earlier import has already warned)."""

import json
import subprocess
import sys

import pytest

from freecg_plugin._moved import MOVED

CHECK = """
import importlib, json, warnings
warnings.simplefilter("always")
import pytest

from freecg_plugin._moved import MOVED
seen = {}
with warnings.catch_warnings(record=True) as caught:
    for old in MOVED:
        importlib.import_module(old)
        importlib.import_module(old)  # a second import does not warn again
    from freecg_plugin.calculator import FreeCGCalculator, load_inference_model
    from freecg_plugin.training.compare import verdict, run_plan
    from freecg_plugin.training.task import PotentialTask, frame_loader, check_elements
    from freecg_plugin.integrations import FreeCGCalculator as new_calculator
    from freecg_plugin.checkpoint import load_trained_model
    from freecg_plugin.compare import verdict as new_verdict
    from freecg_plugin.data.loaders import frame_loader as new_loader
    same = [FreeCGCalculator is new_calculator, load_inference_model is load_trained_model, verdict is new_verdict, frame_loader is new_loader]
    try:
        from freecg_plugin.training.task import no_such_name
        missing = None
    except ImportError as err:
        missing = str(err)
print(json.dumps({"warnings": [str(w.message) for w in caught if issubclass(w.category, FutureWarning)], "same": same, "missing": missing}))
"""


@pytest.mark.slow
def test_old_paths_import_warn_once_and_give_the_new_objects():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["warnings"]) == len(MOVED)
    for old, message in zip(MOVED, result["warnings"]):
        assert message.startswith(f"{old} has moved to {MOVED[old][0]}") and "removed in freecg-plugin 0.3" in message
    assert all(result["same"]) and "no_such_name" in result["missing"]
