"""A ``freecg compare`` plan: its config (:class:`CompareConfig`) and the runs it needs
(:func:`plan`), each a ``freecg train`` of one host, variant, budget and seed.

For every host in the plan, the bare host and host + FreeCG are trained by the project's trainer
(one loss, optimiser, warm-up/plateau schedule, EMA and precision for every host) with
everything else equal: data, split, seed, epochs, batch size, loss weights. Three budgets for the
bare host: equal epochs; equal wall-clock time (it trains for as long as host + FreeCG took,
``optim.max_time_s``, that run's training time over all its invocations); equal parameters (it
is widened to host + FreeCG's parameter count, see :mod:`~freecg_plugin.compare.equal_parameters`,
and trained for the same epochs). A ViSNet ablation (+ group CG, + shuffle, + enhancer, and a
second group count) can be added. Runs with identical configs are run once.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..configs.reading import config_path
from ..configs.train import OptimConfig, TrainConfig
from ..data.splits import load_data
from ..hosts import HOSTS
from ..training.snapshots import log_spaced_times
from .equal_parameters import FINE_ARGS, WIDTH_ARGS, Widened, widen_host
from .plan_file import load_plan

__all__ = [
    "ABLATION_STEPS",
    "BUDGETS",
    "BUDGET_NAMES",
    "FIXED_BUDGETS",
    "CURVE_ARMS",
    "CURVE_METRICS",
    "CompareConfig",
    "Run",
    "load_compare_config",
    "plan",
    "preset_path",
    "widen_hosts",
    "width_of",
]

FIXED_BUDGETS = ("epochs", "time", "parameters")
"""The budgets compared at one end point (the default of a plan)."""
BUDGETS = (*FIXED_BUDGETS, "curve")
BUDGET_NAMES = {"epochs": "equal epochs", "time": "equal time", "parameters": "equal parameters", "curve": "curve (at the horizon)"}
CURVE_KEYS = {"horizon_s", "first_s", "factor", "arms", "metric"}
CURVE_ARMS = ("host + FreeCG", "host", "host, equal parameters")
"""The arms of the curve budget, in the report's order."""
ARM_FREECG = CURVE_ARMS[0]
CURVE_METRICS = ("test_forces_mae", "val_forces_mae")
"""What a curve report compares: the test error (results), or the validation error (choosing variants)."""
EXECUTORS = ("local", "slurm", "local_jobs")
"""Where a plan's runs go (see :mod:`~freecg_plugin.compare.jobs`)."""
SLURM_KEYS = {"partition", "gpus_per_node", "cpus_per_task", "mem", "time", "account", "qos", "sbatch", "max_parallel"}
CURVE_EPOCHS = 1_000_000
"""A curve run's epoch cap: its horizon is set in time."""
ABLATION_STEPS = {  # the paper's ablation order; the last step is FreeCG with its defaults
    "+ group CG": dict(shuffle=False, enhancer=False),
    "+ shuffle": dict(enhancer=False),
    "+ enhancer": dict(),
}


@dataclass
class CompareConfig:
    """A comparison plan (YAML; unknown keys are rejected by name).

    Attributes:
        hosts: one entry per host: ``{host, args, freecg, freecg_layers, label, horizon_s}``
            (``host`` one of ``visnet, painn, so3net, nequip, allegro, mace``; ``args`` its
            arguments; ``freecg`` the settings of the FreeCG member; ``label`` defaults to the host
            name; ``horizon_s``: this host's curve horizon in place of ``curve.horizon_s``, for a
            host that needs longer to flatten; its snapshot times are the plan's up to it).
        data: :class:`~freecg_plugin.data.config.DataConfig` values, shared by every run.
        optim: :class:`~freecg_plugin.configs.train.OptimConfig` values, shared by every run
            (``max_epochs`` is the equal-epoch budget; ``seed`` is replaced by each of ``seeds``).
        cutoff: graph cutoff in Å for every host.
        seeds: training seeds; results are reported as mean ± std over them (at least two for
            a verdict).
        budgets: any of ``epochs``, ``time`` (the bare host gets host + FreeCG's training time),
            ``parameters`` (the bare host widened to host + FreeCG's parameter count) and
            ``curve`` (time-to-accuracy curves of all three, see :mod:`~freecg_plugin.compare.curves`).
        curve: ``{horizon_s, first_s, factor, arms, metric}`` for the ``curve`` budget: every arm
            trains for ``horizon_s`` seconds of the training clock, its weights saved at
            ``first_s``, ``first_s * factor``, ... and at the horizon (``factor`` 2 unless given;
            a host entry's own ``horizon_s`` replaces ``horizon_s`` for that host).
            ``arms``: a subset of :data:`CURVE_ARMS` (default all three; a screening of FreeCG
            variants may leave out the widened host). ``metric``: one of :data:`CURVE_METRICS`
            (default the test force MAE; the validation error for choosing among variants, so that
            the choice is not made on the curves it is reported on).
        ablation: ``{args, groups: [G1, G2]}`` for the ViSNet ablation (``null``: none).
        output: folder for the runs and the report.
        accelerator: Lightning accelerator for every run.
        task: ``potential`` (energies and forces; compared on the test force MAE) or
            ``properties`` (compared on each target's test MAE).
        targets: ``task: properties``: the property targets (e.g. ``[mu, U0, gap, r2]``).
        executor: ``local`` (the runs one after another on this machine, the default),
            ``slurm`` (each run a SLURM job, through submitit) or ``local_jobs`` (the same jobs
            as processes on this machine, through submitit's local executor); see
            :mod:`~freecg_plugin.compare.jobs`.
        slurm: the jobs' settings (``executor: slurm``; ``max_parallel`` also for
            ``local_jobs``): ``partition``, ``gpus_per_node``, ``cpus_per_task``, ``mem``
            (e.g. ``16G``), ``time`` (minutes), ``account``, ``qos``, ``sbatch`` (more
            ``sbatch`` options as a mapping, e.g. ``{constraint: a100}``) and ``max_parallel``
            (jobs in the queue at once; default no limit for SLURM, 1 for local jobs).
    """

    hosts: List[Dict[str, Any]]
    data: Dict[str, Any] = field(default_factory=dict)
    optim: Dict[str, Any] = field(default_factory=dict)
    cutoff: float = 5.0
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    budgets: List[str] = field(default_factory=lambda: list(FIXED_BUDGETS))
    curve: Optional[Dict[str, Any]] = None
    ablation: Optional[Dict[str, Any]] = None
    output: str = "runs/compare"
    accelerator: str = "cpu"
    task: str = "potential"
    targets: Optional[List[str]] = None
    executor: str = "local"
    slurm: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("compare: `hosts` is empty")
        for i, entry in enumerate(self.hosts):
            unknown = sorted(set(entry) - {"host", "args", "freecg", "freecg_layers", "label", "horizon_s"})
            if unknown:
                raise ValueError(f"compare: hosts[{i}] has unknown keys {unknown}")
            if entry.get("host") not in HOSTS:
                raise ValueError(f"compare: hosts[{i}].host must be one of {sorted(HOSTS)}, got {entry.get('host')!r}")
        bad = sorted(set(self.budgets) - set(BUDGETS))
        if bad or not self.budgets:
            raise ValueError(f"compare: budgets must be a non-empty subset of {list(BUDGETS)}, got {self.budgets}")
        if not self.seeds:
            raise ValueError("compare: `seeds` is empty")
        task = {"task": self.task, "targets": self.targets} if self.task != "potential" else {}
        for entry in self.hosts:  # checks the shared sections, and each host against the task
            TrainConfig.from_dict({"data": self.data, "optim": self.optim, "model": {"host": entry["host"]}, **task}, "compare")
        if self.task == "properties" and ("parameters" in self.budgets or self.ablation is not None):
            raise ValueError("compare: task properties compares at equal epochs and equal time (no parameters budget, no ablation)")
        if ("curve" in self.budgets) != (self.curve is not None):
            raise ValueError("compare: the curve budget and the `curve: {horizon_s, first_s}` settings go together")
        if self.curve is not None:
            unknown = sorted(set(self.curve) - CURVE_KEYS)
            if unknown or not {"horizon_s", "first_s"} <= set(self.curve):
                raise ValueError(f"compare: curve takes horizon_s, first_s, factor, arms and metric, got {sorted(self.curve)}")
            arms = self.curve_arms()
            if not arms or set(arms) - set(CURVE_ARMS) or ARM_FREECG not in arms:
                raise ValueError(f"compare: curve arms must include {ARM_FREECG!r} and be among {list(CURVE_ARMS)}, got {arms}")
            if self.curve.get("metric", CURVE_METRICS[0]) not in CURVE_METRICS:
                raise ValueError(f"compare: curve metric must be one of {list(CURVE_METRICS)}, got {self.curve['metric']!r}")
            if self.task != "potential":
                raise ValueError("compare: time-to-accuracy curves are for task potential")
            for i, entry in enumerate(self.hosts):
                try:
                    self.curve_times(entry)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"compare: hosts[{i}]: curve times: {err}") from None
        if self.curve is None and any("horizon_s" in entry for entry in self.hosts):
            raise ValueError("compare: a host's `horizon_s` is the length of its curves: it needs the curve budget")
        if self.executor not in EXECUTORS:
            raise ValueError(f"compare: executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        unknown = sorted(set(self.slurm or {}) - SLURM_KEYS)
        if unknown:
            raise ValueError(f"compare: slurm has unknown keys {unknown}; known: {sorted(SLURM_KEYS)}")
        if self.slurm and self.executor == "local":
            raise ValueError("compare: `slurm:` settings need `executor: slurm` (or local_jobs)")
        if self.ablation is not None:
            unknown = sorted(set(self.ablation) - {"args", "groups"})
            if unknown or len(self.ablation.get("groups", [])) != 2:
                raise ValueError("compare: ablation needs `args` (ViSNet arguments) and `groups: [G1, G2]`")

    def curve_arms(self) -> List[str]:
        """The arms the curve budget trains (:data:`CURVE_ARMS` unless the plan names fewer)."""
        return list((self.curve or {}).get("arms", CURVE_ARMS))

    def curve_times(self, entry: Dict[str, Any]) -> List[float]:
        """The snapshot times of a host entry's curves (seconds of the training clock), up to its
        own ``horizon_s`` or the plan's."""
        c = self.curve or {}
        return log_spaced_times(float(c["first_s"]), float(entry.get("horizon_s", c["horizon_s"])), float(c.get("factor", 2.0)))


def load_compare_config(path, overrides: Sequence[str] = ()) -> CompareConfig:
    """Read a comparison plan (a file, or the name of a shipped plan; its data paths relative to
    the file), apply ``key=value`` overrides; errors name the file and the problem."""
    return load_plan(CompareConfig, path, "compare", overrides, required=("hosts",))


def preset_path(name: str) -> Path:
    """The shipped plan ``name`` (``freecg compare --help`` lists them)."""
    return config_path(name, "compare")


@dataclass
class Run:
    """One training run of the plan, with every role it plays in the report.

    Attributes:
        key: a hash of the run's settings (its folder is ``runs/<key>``).
        roles: ``[label, variant]`` pairs (e.g. ``["visnet", "host"]`` and
            ``["ViSNet ablation", "ViSNet"]`` when the two are the same run).
        budget: ``epochs``, ``time`` or ``parameters``.
        time_of: the key of the run whose training time is this run's budget (equal-time runs).
    """

    key: str
    roles: List[List[str]]
    budget: str
    seed: int
    config: Dict[str, Any]
    time_of: Optional[str] = None

    @property
    def folder(self) -> str:
        return f"runs/{self.key}"

    @property
    def name(self) -> str:
        label, variant = self.roles[0]
        return f"{label}: {variant} ({self.budget}, seed {self.seed})"


def _key(config: Dict[str, Any], time_of: Optional[str]) -> str:
    text = json.dumps({"config": config, "time_of": time_of}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan(config: CompareConfig, widened: Optional[Dict[str, Widened]] = None) -> List[Run]:
    """Every run the comparison needs, in an order where each equal-time run follows its reference.
    Runs with identical settings (e.g. the ablation's bare ViSNet and the visnet pair's host) are
    run once and play several roles. ``widened``: the equal-parameter hosts by label
    (:func:`widen_hosts`; computed here when the plan has that budget and none are given)."""
    curve_arms = config.curve_arms() if "curve" in config.budgets else []
    if ("parameters" in config.budgets or CURVE_ARMS[2] in curve_arms) and widened is None:
        widened = widen_hosts(config)
    runs: Dict[str, Run] = {}

    def add(label, variant, budget, seed, host, args, freecg, layers=None, time_of=None, entry=None) -> str:
        optim = dict(config.optim, seed=seed)
        if budget == "time":
            optim["max_epochs"] = int(optim.get("max_epochs", OptimConfig.max_epochs)) * 100
        if budget == "curve":
            times = config.curve_times(entry)
            optim.update(max_epochs=CURVE_EPOCHS, max_time_s=times[-1], curve_points_s=times)
        train = {
            "data": dict(config.data),
            "model": {
                "host": host,
                "args": dict(args or {}),
                "cutoff": config.cutoff,
                "freecg": copy.deepcopy(freecg),
                "freecg_layers": layers,
            },
            "optim": optim,
            "accelerator": config.accelerator,
        }
        if config.task != "potential":
            train.update(task=config.task, targets=list(config.targets))
        key = _key(train, time_of)
        if key not in runs:
            runs[key] = Run(key, [], budget, seed, train, time_of)
        runs[key].roles.append([label, variant])
        return key

    for seed in config.seeds:
        for entry in config.hosts:
            label = _label(entry)
            host, args = entry["host"], entry.get("args", {})
            if set(FIXED_BUDGETS) & set(config.budgets):
                freecg = dict(entry.get("freecg") or {})
                with_freecg = add(label, "host + FreeCG", "epochs", seed, host, args, freecg, entry.get("freecg_layers"))
            if "epochs" in config.budgets:
                add(label, "host", "epochs", seed, host, args, None)
            if "time" in config.budgets:
                add(label, "host", "time", seed, host, args, None, time_of=with_freecg)
            if "parameters" in config.budgets:
                add(label, "host", "parameters", seed, host, widened[label].args, None)
            if "curve" in config.budgets:
                freecg = dict(entry.get("freecg") or {})
                add(label, CURVE_ARMS[0], "curve", seed, host, args, freecg, entry.get("freecg_layers"), entry=entry)
                if CURVE_ARMS[1] in curve_arms:
                    add(label, CURVE_ARMS[1], "curve", seed, host, args, None, entry=entry)
                if CURVE_ARMS[2] in curve_arms:
                    add(label, CURVE_ARMS[2], "curve", seed, host, widened[label].args, None, entry=entry)
        if config.ablation is not None:
            args = config.ablation["args"]
            add("ViSNet ablation", "ViSNet", "epochs", seed, "visnet", args, None)
            first, second = config.ablation["groups"]
            for step, switches in ABLATION_STEPS.items():
                add("ViSNet ablation", f"{step} (G={first})", "epochs", seed, "visnet", args, dict(switches, groups=first))
            add(
                "ViSNet ablation",
                f"+ enhancer (G={second})",
                "epochs",
                seed,
                "visnet",
                args,
                dict(ABLATION_STEPS["+ enhancer"], groups=second),
            )
    return list(runs.values())


def _label(entry: Dict[str, Any]) -> str:
    return entry.get("label", entry["host"])


def widen_hosts(config: CompareConfig) -> Dict[str, Widened]:
    """Per host label, the bare host widened to host + FreeCG's parameter count on the plan's data.

    Raises:
        ValueError: when a widened host misses the target by more than 5 %.
    """
    train, _, _ = load_data(TrainConfig.from_dict({"data": config.data}, "compare").data)
    out = {}
    for entry in config.hosts:
        label = _label(entry)
        wide = widen_host(
            entry["host"], entry.get("args", {}), config.cutoff, dict(entry.get("freecg") or {}), entry.get("freecg_layers"), train.elements
        )
        if abs(wide.mismatch) > 0.05:
            raise ValueError(f"compare: {label} widened to {wide.parameters} parameters, {100 * wide.mismatch:+.1f} % off {wide.target}")
        out[label] = wide
    return out


def width_of(run: Run) -> str:
    """``hidden_channels=36, num_rbf=40``: the width arguments of a widened run."""
    model = run.config["model"]
    keys = (WIDTH_ARGS[model["host"]], FINE_ARGS[model["host"]])
    return ", ".join(f"{key}={model['args'][key]}" for key in keys if key in model["args"])
