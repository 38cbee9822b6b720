"""The bad-input table of the docs, made from ``bad_inputs.yaml`` at every build (the tests run
the same rows: tests/test_bad_inputs.py)."""

from pathlib import Path
from typing import Any, Dict, List

import yaml

HERE = Path(__file__).resolve().parent


def _command(row: Dict[str, Any]) -> str:
    run = row["run"]
    if isinstance(run, str):
        return f"`{run.removeprefix('python: ')}` (Python API)"
    line = "`freecg " + " ".join(str(a) for a in run) + "`"
    if row.get("unprivileged"):
        line += " as a user (not root)"
    if "file_size_limit" in row:
        line += f" with a file-size limit of {row['file_size_limit']} bytes"
    return line


def markdown(rows: List[Dict[str, Any]]) -> str:
    """The rows as a Markdown table: case, command, the message it gives (in part)."""
    lines = ["| case | input | one-line error (contains) |", "|---|---|---|"]
    for row in rows:
        cells = [row["case"], _command(row), f"`{row['message']}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write(target: Path) -> None:
    """Write the table to ``target`` (only when it changed: Sphinx rebuilds what changed)."""
    text = markdown(yaml.safe_load((HERE / "bad_inputs.yaml").read_text()))
    if not target.is_file() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
