"""Files written whole or not at all: every report, config, state and model file of the project
goes through :func:`write_atomic`, so an interruption never leaves one half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["write_atomic", "write_json", "write_text"]


def write_atomic(path, write: Callable[[str], Any]) -> None:
    """Call ``write(temporary_path)`` (a file beside ``path``) and rename the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    """``text`` into ``path``, atomically."""
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path, values: Any, indent: int = 1) -> None:
    """``values`` as JSON into ``path``, atomically."""
    write_text(path, json.dumps(values, indent=indent))
