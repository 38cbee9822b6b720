"""Configs shipped inside the package, so that ``freecg train --config small`` and
``freecg compare --preset quick`` work after a plain ``pip install``.

``train/``: ``freecg train`` configs; ``compare/``: ``freecg compare`` plans. Copy one
(``freecg train --config small --print-config > mine.yaml``) to start your own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

__all__ = ["shipped_config", "shipped_configs"]

_HERE = Path(__file__).parent
KINDS = ("train", "compare", "md_compare")


def shipped_configs(kind: str) -> Dict[str, str]:
    """``{name: first comment line}`` of the shipped configs of ``kind`` (one of :data:`KINDS`)."""
    out = {}
    for path in sorted((_HERE / kind).glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        out[path.stem] = first.lstrip("# ").strip()
    return out


def shipped_config(kind: str, name: str) -> Path:
    """The shipped config ``name`` of ``kind``.

    Raises:
        ValueError: for an unknown name, listing the shipped ones.
    """
    if kind not in KINDS:
        raise ValueError(f"config kind must be one of {KINDS}, got {kind!r}")
    path = _HERE / kind / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"{name!r} is neither a file nor a shipped {kind} config; shipped: {sorted(shipped_configs(kind))}")
    return path
