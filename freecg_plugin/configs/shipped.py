"""Configs shipped inside the package, found by name: ``train/`` (``freecg train --config
NAME``), ``compare/`` (``freecg compare --preset NAME``), ``md_compare/`` (``freecg md-compare
--preset NAME``), ``md/`` (``freecg md --config NAME``)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

__all__ = ["KINDS", "shipped_config", "shipped_configs"]

_HERE = Path(__file__).parent
KINDS = ("train", "compare", "md_compare", "md")
"""The kinds of shipped config, one folder each."""


def shipped_configs(kind: str) -> Dict[str, str]:
    """``{name: description}`` of the shipped configs of ``kind`` (one of :data:`KINDS`): the
    opening comment of each file, up to its first command line or blank comment line."""
    return {path.stem: _description(path) for path in sorted((_HERE / kind).glob("*.yaml"))}


def _description(path: Path) -> str:
    words = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text or line.startswith("#  ") or text.startswith(("freecg ", "Units:")):
            break
        text, command, _ = text.partition("  freecg ")
        words.append(text.strip())
        if command:
            break
    return " ".join(words).rstrip(":")


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
