"""Frozen config dataclasses: typed overrides from the CLI and from suite YAML.

Configs are frozen, keyword-only dataclasses holding the paper's defaults. Overrides arrive as
plain values (from YAML) or strings (from ``--set key=value``); :func:`apply_overrides` checks
every key against the fields and coerces every value to the field's declared type.

What a field allows beyond its type is declared on the field, with ``typing.Annotated``:

- :class:`Range`: the numbers allowed (``nu: Annotated[float, Range(gt=0, le=1)]``; the aliases
  :data:`PositiveInt`, :data:`PositiveFloat`, :data:`NonNegativeInt`, :data:`NonNegativeFloat`,
  :data:`Fraction` name the common ones), checked by :func:`check_fields`
  whenever a config is built;
- :class:`FileOr`: one of some keywords or the path of an existing file (weights), checked by
  :func:`check_files` with the data, before a run (the file has to exist where jobs run, not
  wherever a config is read).

Constraints between fields are plain code calling :func:`require`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from bench.core.errors import UsageError
from bench.core.yamlfile import YamlLimitError, load_yaml

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
            out[key] = load_yaml(raw, f"--set {key}") if raw.strip() else ""
        except YamlLimitError:  # an alias bomb is no plain string either
            raise
        except UsageError:  # not YAML: the text as it is
            out[key] = raw
    return out


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    """``int``, ``float or one of ['scale', 'auto']``, ``int or none``."""
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_name(a) for a in get_args(tp))
    if get_origin(tp) is Literal:
        return f"one of {list(get_args(tp))}"
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
        raise UsageError(f"{name}: cannot use {value!r}; expected {_type_name(tp)}")
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
        try:
            number = float(value) if isinstance(value, (int, float, str)) else None
        except ValueError:
            number = None
        if number is None:
            raise UsageError(f"{name}: expected a number, got {value!r}")
        if not math.isfinite(number):  # nan passes every range check; inf means nothing here
            raise UsageError(f"{name}: expected a finite number, got {value!r}")
        return number
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


# ------------------------------------------------------------------------ declared constraints


def require(condition: bool, message: str) -> None:
    """Raise :class:`UsageError` with ``message`` unless ``condition`` holds (for constraints
    between fields; a message names the fields, their values and what is allowed)."""
    if not condition:
        raise UsageError(message)


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Range:
    """The numbers a config field allows, declared on the field::

        nu: Annotated[float, Range(gt=0, le=1)] = 0.1

    Every number of the value is checked (each element of a tuple); ``None`` and names (OCSVM's
    ``gamma='scale'``) are not numbers and pass.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, x: float) -> bool:
        return (math.isfinite(x)
                and (self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))

    def describe(self, name: str) -> str:
        """The range as an inequality on ``name``: ``0 < nu <= 1``, ``epochs >= 1``."""
        low = ((self.ge, "<=") if self.ge is not None
               else (self.gt, "<") if self.gt is not None else None)
        high = ((self.le, "<=") if self.le is not None
                else (self.lt, "<") if self.lt is not None else None)
        if low and high:
            return f"{_fmt(low[0])} {low[1]} {name} {high[1]} {_fmt(high[0])}"
        if low:
            return f"{name} {'>=' if low[1] == '<=' else '>'} {_fmt(low[0])}"
        if high:
            return f"{name} {high[1]} {_fmt(high[0])}"
        return f"any {name}"


#: common ranges, as types to annotate fields with
PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
#: a share of something: (0, 1]
Fraction = Annotated[float, Range(gt=0, le=1)]


@dataclass(frozen=True)
class FileOr:
    """A field holding one of ``keywords`` or the path of an existing file (``what``)::

        expert_weights: Annotated[str | None, FileOr(("imagenet", "random"), "a state_dict file")]

    ``None`` passes (whether a value is required is the method's own check)."""

    keywords: tuple[str, ...]
    what: str = "a file"
    #: reads an existing file and raises a one-line error if its content will not do (a weights
    #: file that is not a plain state dict): checked with the data, before any job runs
    validate: Callable[[Path], None] | None = field(default=None, compare=False)

    def allowed(self) -> str:
        return ", ".join(repr(k) for k in self.keywords) + f" or the path of {self.what}"


def _metadata(tp: Any) -> Iterator[Any]:
    """Every ``Annotated`` metadata item anywhere in the annotation ``tp``."""
    if get_origin(tp) is Annotated:
        yield from tp.__metadata__
        tp = get_args(tp)[0]
    for arg in get_args(tp):
        if not isinstance(arg, (str, int, float, bool)) and arg is not Ellipsis:
            yield from _metadata(arg)


_DECLARED: dict[type, dict[str, tuple[Range | FileOr, ...]]] = {}


def declared(cls: type) -> dict[str, tuple[Range | FileOr, ...]]:
    """Field name -> the constraints declared on it (:class:`Range`, :class:`FileOr`)."""
    if cls not in _DECLARED:
        hints = typing.get_type_hints(cls, include_extras=True)
        _DECLARED[cls] = {f.name: found for f in dataclasses.fields(cls)
                          if (found := tuple(m for m in _metadata(hints[f.name])
                                             if isinstance(m, (Range, FileOr))))}
    return _DECLARED[cls]


def _numbers(value: Any) -> list[float]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


def check_fields(config: object) -> None:
    """Raise :class:`UsageError` for a field whose value is outside its declared :class:`Range`,
    naming the field, the value and the range."""
    for name, constraints in declared(type(config)).items():
        value = getattr(config, name)
        for c in constraints:
            if isinstance(c, Range) and not all(c.allows(x) for x in _numbers(value)):
                each = "each of " if isinstance(value, (list, tuple)) else ""
                raise UsageError(f"{name}={to_plain(value)!r} is out of range "
                                 f"(allowed: {each}{c.describe(name)})")


def check_files(config: object) -> None:
    """Raise :class:`UsageError` for a :class:`FileOr` field whose value is neither a keyword nor
    an existing file, naming the field, the value and what is allowed."""
    for name, constraints in declared(type(config)).items():
        value = getattr(config, name)
        for c in constraints:
            if not isinstance(c, FileOr) or value is None or value in c.keywords:
                continue
            path = Path(str(value)).expanduser()
            if not path.is_file():
                raise UsageError(f"{name}={value!r}: no such file (allowed: {c.allowed()})")
            if c.validate is not None:
                c.validate(path)
