from dataclasses import dataclass
from typing import Literal

import pytest

from bench.core.config import apply_overrides, coerce, parse_set, to_plain
from bench.core.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class Cfg:
    epochs: int = 3
    lamda: float = 0.5
    layers: tuple[str, ...] = ("a", "b")
    mode: Literal["x", "y"] = "x"
    flag: bool = False
    size: int | None = None
    name: str = "n"


def test_parse_set_reads_yaml_values():
    got = parse_set(["epochs=40", "lamda=0.01", "layers=[pool4, pool5]", "flag=true", "name=abc"])
    assert got == {"epochs": 40, "lamda": 0.01, "layers": ["pool4", "pool5"], "flag": True,
                   "name": "abc"}


def test_parse_set_rejects_missing_equals():
    with pytest.raises(UsageError, match="key=value"):
        parse_set(["epochs"])


def test_apply_overrides_coerces_types():
    cfg = apply_overrides(Cfg(), {"epochs": "7", "lamda": 1, "layers": "c,d", "mode": "y",
                                  "flag": "yes", "size": "none"})
    assert cfg == Cfg(epochs=7, lamda=1.0, layers=("c", "d"), mode="y", flag=True, size=None)
    assert apply_overrides(Cfg(), {"size": 12}).size == 12


@pytest.mark.parametrize("key,value,match", [
    ("epochs", "many", "expected an integer"),
    ("epochs", 2.5, "expected an integer"),
    ("lamda", "x", "expected a number"),
    ("mode", "z", "not one of"),
    ("flag", "maybe", "true/false"),
])
def test_apply_overrides_rejects_bad_values(key, value, match):
    with pytest.raises(UsageError, match=match):
        apply_overrides(Cfg(), {key: value})


def test_unknown_field_lists_valid_fields():
    with pytest.raises(UsageError, match="unknown field.*epochz.*valid fields: epochs, lamda"):
        apply_overrides(Cfg(), {"epochz": 1})


def test_coerce_tuple_of_ints_and_to_plain():
    assert coerce(tuple[int, ...], [1, "2"], "x") == (1, 2)
    assert to_plain(Cfg()) == {"epochs": 3, "lamda": 0.5, "layers": ["a", "b"], "mode": "x",
                               "flag": False, "size": None, "name": "n"}
