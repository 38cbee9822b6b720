"""The code a plan's runs use: a snapshot of the package's sources, taken when the plan is
submitted, in ``OUTPUT/code/<sources hash>/freecg_plugin`` (the adapters in
``freecg_plugin/adapters``, as a wheel lays them out). Every run of the plan imports it first
(``PYTHONPATH``), so editing the working tree while a plan runs changes none of its runs.
The snapshot carries a link to the shipped data (``examples/data`` of the checkout the package
ran from), which the registry finds beside the package."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict

from ..data.registry import shipped_root
from ..provenance import code_identity, package_files, sources_hash

__all__ = ["snapshot_code", "snapshot_environment"]


def snapshot_code(output: Path) -> Path:
    """The folder to put first on ``PYTHONPATH`` for the plan in ``output`` (made once per code
    version; an existing snapshot of the same sources is reused)."""
    digest = code_identity()["sources_sha256"]
    target = Path(output) / "code" / digest[:16]
    if (target / "freecg_plugin").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", dir=target.parent))
    try:
        for name, path in package_files():
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
        if sources_hash(staging / "freecg_plugin") != digest:
            raise RuntimeError("compare: the package's sources changed while they were copied; try again")
        shipped = shipped_root()
        if shipped is not None:
            (staging / "examples").mkdir()
            (staging / "examples" / "data").symlink_to(shipped, target_is_directory=True)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def snapshot_environment(snapshot: Path) -> Dict[str, str]:
    """This process's environment with ``snapshot`` first on ``PYTHONPATH`` (and
    ``PYTHONSAFEPATH``, Python >= 3.11: ``python -m`` started in a checkout would otherwise import
    the checkout's package before the snapshot)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(snapshot), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONSAFEPATH"] = "1"
    return env
