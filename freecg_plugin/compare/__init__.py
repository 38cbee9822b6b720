"""Comparisons: does FreeCG make a host better, and at what cost?

``freecg compare`` (:func:`run_plan`) trains each host bare and with FreeCG under the plan's
budgets (equal epochs, equal time, equal parameters) over several seeds and reports a verdict per
host and budget; ``freecg md-compare`` (:mod:`freecg_plugin.compare.md`) runs models through one
MD protocol. Both read plans the same way (:mod:`~freecg_plugin.compare.plan_file`), run
trainings as ``freecg train`` subprocesses (:mod:`~freecg_plugin.compare.execute`) and use the
same statistics (:mod:`~freecg_plugin.compare.statistics`).
"""

from .execute import run_plan, train_in_subprocess
from .plan import BUDGET_NAMES, BUDGETS, CompareConfig, Run, load_compare_config, plan, preset_path, widen_hosts
from .report import report
from .statistics import mean_std, verdict

__all__ = [
    "BUDGETS",
    "BUDGET_NAMES",
    "CompareConfig",
    "Run",
    "load_compare_config",
    "mean_std",
    "plan",
    "preset_path",
    "report",
    "run_plan",
    "train_in_subprocess",
    "verdict",
    "widen_hosts",
]
