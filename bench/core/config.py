"""Frozen config dataclasses: typed overrides from the CLI and from suite YAML.

Configs are frozen, keyword-only dataclasses holding the paper's defaults. Overrides arrive as
plain values (from YAML) or strings (from ``--set key=value``); :func:`apply_overrides` checks
every key against the fields and coerces every value to the field's declared type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from bench.core.errors import UsageError

C = TypeVar("C")


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML scalars or lists (``[a, b]``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(tp: Any, value: Any, name: str) -> Any:
    """Coerce ``value`` to the annotation ``tp``; raises :class:`UsageError` when impossible."""
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, name)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(f"{name}: cannot use {value!r} as {_type_name(tp)}")
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise UsageError(f"{name}: {value!r} is not one of {list(args)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, name) for v in value)
        if origin is tuple and args:
            if len(args) != len(value):
                raise UsageError(f"{name}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(a, v, name) for a, v in zip(args, value, strict=True))
        inner = args[0] if args else Any
        seq = [coerce(inner, v, name) for v in value]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise UsageError(f"{name}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UsageError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise UsageError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise UsageError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UsageError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UsageError(f"{name}: expected a string, got {value!r}")
    raise UsageError(f"{name}: unsupported field type {_type_name(tp)}")


def apply_overrides(config: C, overrides: Mapping[str, Any]) -> C:
    """Return a copy of ``config`` with ``overrides`` applied, each checked and coerced."""
    cls = type(config)
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise UsageError(
            f"unknown field(s) {', '.join(unknown)} for {cls.__name__}; "
            f"valid fields: {', '.join(names)}"
        )
    changes = {k: coerce(hints[k], v, k) for k, v in overrides.items()}
    try:
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{cls.__name__}: {exc}") from None


def to_plain(obj: Any) -> Any:
    """A JSON-ready copy: dataclasses to dicts, tuples to lists, paths to strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
