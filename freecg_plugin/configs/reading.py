"""Reading configs: YAML mappings, dataclasses built from them with unknown keys rejected by
name, ``key=value`` overrides, data paths relative to the file that names them, and shipped
configs found by name."""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from .shipped import shipped_config

__all__ = ["apply_overrides", "build_dataclass", "config_path", "read_config", "read_yaml_mapping", "resolve_data_paths"]


def build_dataclass(cls, values: Mapping[str, Any] | None, where: str):
    """``cls(**values)``, rejecting unknown keys by name and values of the wrong type for the
    fields typed ``int``, ``float``, ``str`` or ``bool`` (optional or not; an int, or a string
    that reads as a number, is a float too) (``where`` says which file/section)."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        values[name] = _typed(value, hints[name], f"{where.rsplit(': ', 1)[-1]}.{name}")
    return cls(**values)


def _typed(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked against a scalar type hint (and made a float where a float is due)."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if optional:
        if value is None:
            return None
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if hint in (int, str) and not (isinstance(value, hint) and not isinstance(value, bool)):
        raise ValueError(f"{name} must be {'an int' if hint is int else 'a string'}, got {value!r}")
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-3 (no dot) as a string
            except ValueError:
                pass
        raise ValueError(f"{name} must be a number, got {value!r}")
    return value


def read_yaml_mapping(path, what: str = "config file") -> Dict[str, Any]:
    """The mapping at the top of a YAML file; errors name the file and the problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ValueError(f"{path}: malformed YAML ({where}{getattr(err, 'problem', None) or str(err).splitlines()[0]})") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(values).__name__}")
    return dict(values)


DATA_FILES = ("train", "val", "test")


def resolve_data_paths(data: Optional[Mapping[str, Any]], base: Path) -> Dict[str, Any]:
    """``data`` with its relative file paths (``train``, ``val``, ``test``) made absolute
    against ``base`` (the folder of the config file that names them)."""
    data = dict(data or {})
    for key in DATA_FILES:
        if isinstance(data.get(key), str) and not Path(data[key]).expanduser().is_absolute():
            data[key] = str((base / data[key]).resolve())
    return data


def apply_overrides(values: Mapping[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """``values`` with ``key=value`` overrides applied (OmegaConf dot-list: ``optim.lr=1e-3``,
    ``data.train=my.xyz``, ``model.freecg=null``). File paths given here are relative to the
    working directory."""
    if not overrides:
        return dict(values)
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ValueError(f"override {item!r} is not key=value (e.g. optim.lr=1e-3)")
    try:
        changes = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise ValueError(f"bad override: {err}".splitlines()[0]) from None
    if "data" in changes:
        changes["data"] = resolve_data_paths(changes["data"], Path.cwd())
    return _merge(dict(values), changes)


def _merge(base: Dict[str, Any], changes: Mapping[str, Any]) -> Dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


def read_config(path, overrides: Sequence[str] = (), what: str = "config file") -> Dict[str, Any]:
    """A config file's mapping, its data paths resolved against the file, overrides applied."""
    values = read_yaml_mapping(path, what)
    if isinstance(values.get("data"), Mapping):
        values["data"] = resolve_data_paths(values["data"], Path(path).resolve().parent)
    return apply_overrides(values, overrides)


def config_path(name_or_path, kind: str) -> Path:
    """A config file: ``name_or_path`` if it is a file, else the shipped config of that name
    (``kind``: ``train`` or ``compare``)."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    return shipped_config(kind, str(name_or_path))
