"""What ran, where: the code (a hash of the installed package's sources, its version, and the git
commit and whether the tree was dirty when the package runs from a checkout), the versions of
Python, torch and the host packages, and the hardware (CPU model and cores, GPU name and count,
the host and, under SLURM, the job). Each training run's record carries it, so that a plan never
silently mixes two versions of the layer or two kinds of machine.

The sources hash covers every ``.py``, ``.cpp`` (the group CG kernel), ``.yaml`` and ``.json``
file of the package by its path inside the package (``freecg_plugin/adapters/...`` wherever the
adapters live on disk), so an editable install, a wheel and a snapshot of the same sources hash
alike, and a README edit changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import torch

__all__ = ["code_identity", "hardware", "package_files", "provenance", "same_hardware", "sources_hash", "versions"]

SOURCE_SUFFIXES = (".py", ".cpp", ".yaml", ".json")
HOST_PACKAGES = ("lightning", "e3nn", "schnetpack", "torch-geometric", "nequip", "nequip-allegro", "mace-torch")


def package_files(root: Optional[Path] = None) -> Iterator[Tuple[str, Path]]:
    """``(path inside the package, file)`` for every source file of ``freecg_plugin`` (``root``:
    a package folder laid out like the installed one; default the package this runs from)."""
    import freecg_plugin

    roots = {"freecg_plugin": Path(root) if root is not None else Path(freecg_plugin.__file__).parent}
    if root is None:
        import freecg_plugin.adapters

        roots["freecg_plugin/adapters"] = Path(freecg_plugin.adapters.__file__).parent  # `adapters/` in a checkout
    for prefix, folder in roots.items():
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix not in SOURCE_SUFFIXES or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(folder).as_posix()
            if prefix == "freecg_plugin" and root is None and relative.startswith("adapters/"):
                continue  # counted from the adapters' own folder
            yield f"{prefix}/{relative}", path


def sources_hash(root: Optional[Path] = None) -> str:
    """SHA-256 of the package's sources (see the module docstring)."""
    digest = hashlib.sha256()
    for name, path in sorted(package_files(root)):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _git(folder: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=1)
def code_identity() -> Dict[str, Any]:
    """``version``, ``sources_sha256``, ``path`` (where the package runs from) and, from a git
    checkout, ``git_commit`` and ``git_dirty``."""
    import freecg_plugin

    folder = Path(freecg_plugin.__file__).parent
    identity: Dict[str, Any] = {"version": freecg_plugin.__version__, "sources_sha256": sources_hash(), "path": str(folder)}
    commit = _git(folder, "rev-parse", "HEAD")
    if commit:
        identity["git_commit"] = commit
        identity["git_dirty"] = bool(_git(folder, "status", "--porcelain", "--untracked-files=no"))
    return identity


def versions() -> Dict[str, str]:
    """Python, torch and whichever host packages are installed."""
    found = {"python": platform.python_version(), "torch": torch.__version__}
    for name in HOST_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> Dict[str, Any]:
    """CPU model and cores (those this process may use), GPU name and count, host, SLURM job."""
    found: Dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "host": socket.gethostname(),
    }
    if found["gpus"]:
        found["gpu"] = torch.cuda.get_device_name(0)
    slurm = {
        key: os.environ[f"SLURM_{key.upper()}"] for key in ("job_id", "job_partition", "nodelist") if f"SLURM_{key.upper()}" in os.environ
    }
    if slurm:
        found["slurm"] = slurm
    return found


def same_hardware(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Whether two records' hardware is the same kind of machine (CPU model, cores, GPU and count)."""
    return all(a.get(key) == b.get(key) for key in ("cpu", "cores", "gpu", "gpus"))


def provenance() -> Dict[str, Any]:
    """``code``, ``versions`` and ``hardware``, for a run's record."""
    return {"code": code_identity(), "versions": versions(), "hardware": hardware()}
