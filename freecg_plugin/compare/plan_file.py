"""Reading a plan file (``freecg compare`` and ``freecg md-compare``): a YAML file or the name of a
shipped plan, ``key=value`` overrides applied, the plan's dataclass built with unknown keys
rejected by name; every error names the file."""

from __future__ import annotations

from typing import Sequence, Type, TypeVar

from ..configs.reading import build_dataclass, config_path, read_config

__all__ = ["load_plan"]

Plan = TypeVar("Plan")


def load_plan(cls: Type[Plan], name_or_path, kind: str, overrides: Sequence[str] = (), required: Sequence[str] = ()) -> Plan:
    """``cls`` built from the plan ``name_or_path`` (a file, or a shipped config of ``kind``).

    Raises:
        ValueError: a missing required key, an unknown key or a bad value, naming the file.
    """
    path = config_path(name_or_path, kind)
    values = read_config(path, overrides, f"{kind.replace('_', '-')} plan")
    missing = [key for key in required if key not in values]
    if missing:
        raise ValueError(f"{path}: `{missing[0]}` is required")
    try:
        return build_dataclass(cls, values, kind.replace("_", "-"))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
