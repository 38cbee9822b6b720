"""The safe model file (``freecg export CKPT --output model.freecg``): a trained potential that
leaves the training process without pickles.

A ``.freecg`` file is a zip archive of two members:

* ``model.json``: ``format`` (``freecg-model``), ``format_version``, the package version that
  wrote it, the training config as a mapping (host and its arguments, FreeCG settings, cutoff,
  the data it was trained on), what the host was built with (elements, energy mean and std,
  neighbours per atom, seed), per-element reference energies, the energy unit, the weights' dtype
  and the SHA-256 of ``weights.safetensors``;
* ``weights.safetensors``: the weights as tested (the EMA model when the recipe keeps one).

Reading rebuilds the model from the installed package (:func:`read_model_file`); nothing in the
file is executed. A file that is truncated, whose weights do not match their hash, whose format
is newer than this package reads, or that names a host whose extra is not installed, is refused
in one line.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from .files import write_atomic

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelRecord", "is_model_file", "read_model_file", "write_model_file"]

FORMAT = "freecg-model"
FORMAT_VERSION = 1
"""The newest format this package writes and reads."""
_ENTRY_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
SUFFIX = ".freecg"
_EXTRAS = {"visnet": "pyg", "painn": "schnetpack", "so3net": "schnetpack", "nequip": "nequip", "allegro": "nequip", "mace": "mace"}


@dataclass
class ModelRecord:
    """What a model file holds: ``record`` (the JSON mapping) and the weights ``state_dict``."""

    record: Dict[str, Any]
    state_dict: Dict[str, torch.Tensor]


def is_model_file(path) -> bool:
    """Whether ``path`` is a safe model file (by its ending or its first bytes)."""
    path = Path(path)
    if path.suffix == SUFFIX:
        return True
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:  # a Lightning checkpoint is a zip archive too
            return "model.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def write_model_file(path, record: Dict[str, Any], state_dict: Dict[str, torch.Tensor]) -> Path:
    """Write a model file atomically: ``record`` (plain JSON values) plus the weights."""
    from safetensors.torch import save

    weights = save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in state_dict.values() if v.is_floating_point()})
    record = dict(record, format=FORMAT, format_version=FORMAT_VERSION, dtype=dtypes, weights_sha256=hashlib.sha256(weights).hexdigest())

    def write(tmp: str) -> None:
        # entries carry a fixed date, so the same model always gives the same bytes (a file kept in git changes only
        # when the model does)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(zipfile.ZipInfo("model.json", _ENTRY_DATE), json.dumps(record, indent=1))
            archive.writestr(zipfile.ZipInfo("weights.safetensors", _ENTRY_DATE), weights)

    write_atomic(Path(path), write)
    return Path(path)


def read_model_file(path) -> ModelRecord:
    """The record and weights of a model file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a model file, truncated, tampered with, from a newer format, or naming a
            host whose extra is not installed (one line, naming the file).
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as archive:
            record = json.loads(archive.read("model.json"))
            weights = archive.read("weights.safetensors")
    except (zipfile.BadZipFile, KeyError, EOFError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable freecg model file (truncated or not one: {str(err)[:120]})") from None
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a freecg model file (format {record.get('format')!r})")
    if int(record.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in model format {record['format_version']} by {record.get('written_by', 'a newer freecg-plugin')}; "
            f"this freecg-plugin reads up to format {FORMAT_VERSION}: upgrade it"
        )
    if hashlib.sha256(weights).hexdigest() != record.get("weights_sha256"):
        raise ValueError(f"{path}: its weights do not match their SHA-256 (the file was changed or damaged)")
    host = record.get("config", {}).get("model", {}).get("host")
    _check_host_installed(path, host)
    return ModelRecord(record, load(weights))


def _check_host_installed(path: Path, host: Optional[str]) -> None:
    import importlib.util

    modules: Dict[str, List[str]] = {
        "pyg": ["torch_geometric"],
        "schnetpack": ["schnetpack"],
        "nequip": ["nequip", "allegro"],
        "mace": ["mace"],
    }
    extra = _EXTRAS.get(str(host))
    if extra is None:
        raise ValueError(f"{path}: names host {host!r}, which this freecg-plugin does not know")
    for module in modules[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ValueError(f"{path}: a {host} model needs {module}: pip install 'freecg-plugin[{extra}]'")
