"""Observables of a ``freecg md`` run against its reference frames, as numbers and PNGs.

:func:`analyse` reads a run folder (``run.json``, ``log.csv``, ``trajectory.extxyz``,
``summary.json``) and writes ``analysis.json`` plus ``energies.png``, ``structure.png`` (h(r) of
a molecule or RDFs of a cell, model vs reference) and, for cells, ``msd.png``. Observables are
taken over the stable part of the run only (frames before the first unstable one).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..data.config import DataConfig
from .observables import diffusivity, distance_histogram, energy_drift, histogram_mae, mean_squared_displacement, rdf, unwrap
from .start import read_frames

__all__ = ["analyse", "read_log"]

H_R_MAX, RDF_R_MAX, BINS = 10.0, 6.0, 500


def read_log(path) -> Dict[str, np.ndarray]:
    """``log.csv`` as ``{column: values}``."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise ValueError(f"{path}: no logged steps")
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    return {name: body[:, k] for k, name in enumerate(header)}


def _reference_frames(record: Dict[str, Any]) -> List:
    source = record["config"].get("reference")
    if not source and not record.get("training_data"):
        return []  # a nequip model: no training data known
    data = None if source else DataConfig(**record["training_data"])
    try:
        return read_frames(source, data)
    except (OSError, ValueError):
        return []


def _pairs(numbers: np.ndarray, names: Optional[List[str]]) -> List[Tuple[str, Optional[Tuple[int, int]]]]:
    """``(label, pair)`` for the RDFs to report: the run's pairs, else every element pair and all
    atoms."""
    from ase.data import atomic_numbers, chemical_symbols

    if names:
        return [(n, tuple(atomic_numbers[s] for s in n.split("-"))) for n in names]
    species = sorted(set(numbers.tolist()), reverse=True)
    pairs = [(f"{chemical_symbols[a]}-{chemical_symbols[b]}", (a, b)) for k, a in enumerate(species) for b in species[k:]]
    return [("all", None)] + (pairs if len(species) > 1 else [])


def analyse(run, plots: bool = True) -> Dict[str, Any]:
    """Stability, observables, energy conservation and speed of the run in folder ``run``.

    Returns (and writes to ``analysis.json``): ``status``, ``stable_time_ps``, ``simulated_ps``,
    ``ns_per_day``, ``steps_per_second``; NVE: ``drift_meV_atom_ps`` (+ ``_stderr``),
    ``fluctuation_meV_atom``; thermostats: ``temperature_K`` mean and ``temperature_std_K``;
    molecules: ``hr_mae`` (h(r), 0-10 Å, against the reference frames); cells: ``rdf_mae``
    per pair (0-6 Å) and ``diffusivity`` per element (Å^2/ps with standard error).
    """
    import ase.io

    run = Path(run)
    if not (run / "summary.json").is_file():
        raise ValueError(f"{run}: no finished `freecg md` run (summary.json missing; `freecg md --resume` finishes it)")
    record = json.loads((run / "run.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    config = record["config"]
    log = read_log(run / "log.csv")
    stable = summary["stable_time"]
    result: Dict[str, Any] = {
        "status": summary["status"],
        "stable_time_ps": stable,
        "simulated_ps": summary["steps"] * config["timestep"] / 1000.0,
        "reason": summary["reason"],
        "ns_per_day": summary["ns_per_day"],
        "steps_per_second": summary["steps_per_second"],
        "atoms": record["atoms"],
        "ensemble": config["ensemble"],
    }
    keep = log["time_ps"] <= stable + 1e-9
    times, total = log["time_ps"][keep], log["total_eV"][keep]
    if config["ensemble"] == "nve" and keep.sum() >= 3:
        drift = energy_drift(times, total, record["atoms"])
        result.update(drift_meV_atom_ps=drift.drift, drift_stderr=drift.stderr, fluctuation_meV_atom=drift.fluctuation)
    elif keep.sum() >= 2:
        result.update(temperature_K=float(log["temperature_K"][keep].mean()), temperature_std_K=float(log["temperature_K"][keep].std()))

    frames = [f for f in ase.io.read(run / "trajectory.extxyz", ":") if f.info["time_ps"] <= stable + 1e-9]
    positions = np.stack([f.positions for f in frames])
    numbers = frames[0].numbers
    reference = [a for a in _reference_frames(record) if len(a) == len(numbers) and (a.numbers == numbers).all()]
    result["reference_frames"] = len(reference)
    curves: Dict[str, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = {}
    if not record["periodic"]:
        r, model = distance_histogram(positions, H_R_MAX, BINS)
        ref = distance_histogram(np.stack([a.positions for a in reference]), H_R_MAX, BINS)[1] if reference else None
        curves["h(r)"] = (r, model, ref)
        if ref is not None:
            result["hr_mae"] = histogram_mae(model, ref, H_R_MAX)
    else:
        cells = np.stack([np.asarray(f.cell) for f in frames])
        ref_pos = np.stack([a.positions for a in reference]) if reference else None
        ref_cells = np.stack([np.asarray(a.cell) for a in reference]) if reference else None
        result["rdf_mae"] = {}
        for label, pair in _pairs(numbers, config.get("rdf_pairs")):
            r, model = rdf(positions, cells, numbers, pair, RDF_R_MAX, BINS)
            ref = rdf(ref_pos, ref_cells, numbers, pair, RDF_R_MAX, BINS)[1] if reference else None
            curves[f"g(r) {label}"] = (r, model, ref)
            if ref is not None:
                result["rdf_mae"][label] = histogram_mae(model, ref, RDF_R_MAX)
        result["diffusivity"] = _diffusivities(frames, positions, cells, numbers, run if plots else None)
    if plots:
        _plot_energies(log, config, stable, run / "energies.png")
        _plot_curves(curves, run / "structure.png")
    (run / "analysis.json").write_text(json.dumps(result, indent=1))
    return result


def _diffusivities(frames, positions, cells, numbers, folder: Optional[Path]) -> Dict[str, Dict[str, float]]:
    """Per element: D (Å^2/ps) and its standard error from the centre-of-mass-corrected MSD,
    fitted after the first 20 % of the stable part."""
    from ase.data import chemical_symbols

    if len(frames) < 5:
        return {}
    times = np.array([f.info["time_ps"] for f in frames]) - frames[0].info["time_ps"]
    unwrapped = unwrap(positions, cells)
    masses = frames[0].get_masses()
    out, msds = {}, {}
    for z in sorted(set(numbers.tolist())):
        msd = mean_squared_displacement(unwrapped, masses, numbers == z)
        d = diffusivity(times, msd)
        out[chemical_symbols[z]] = {"value": d.value, "stderr": d.stderr}
        msds[chemical_symbols[z]] = msd
    if folder is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, msd in msds.items():
            ax.plot(times, msd, label=f"{name}: D = {out[name]['value']:.3g} Å²/ps")
        ax.set(xlabel="time (ps)", ylabel="MSD (Å²)", title="mean squared displacement (centre of mass removed)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "msd.png", dpi=120)
        plt.close(fig)
    return out


def _plot_energies(log: Dict[str, np.ndarray], config: Dict[str, Any], stable: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    t = log["time_ps"]
    for key, label in (("potential_eV", "potential"), ("total_eV", "total")) + (
        (("conserved_eV", "conserved"),) if "conserved_eV" in log else ()
    ):
        top.plot(t, log[key] - log[key][0], label=label, lw=0.8)
    top.set(ylabel="energy - start (eV)", title=f"{config['ensemble']}, {config['temperature']:g} K, {config['timestep']:g} fs")
    top.legend(fontsize=8)
    bottom.plot(t, log["temperature_K"], lw=0.8)
    bottom.set(xlabel="time (ps)", ylabel="temperature (K)")
    if stable < t[-1]:
        for ax in (top, bottom):
            ax.axvline(stable, color="red", ls="--", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_curves(curves: Dict[str, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), squeeze=False)
    for ax, (label, (r, model, ref)) in zip(axes[0], curves.items()):
        ax.plot(r, model, label="MD", lw=1)
        if ref is not None:
            ax.plot(r, ref, label="reference frames", lw=1, ls="--")
        ax.set(xlabel="r (Å)", title=label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
