import pytest

from bench.core.errors import UsageError
from bench.core.registry import Registry


def test_register_get_names():
    reg: Registry[int] = Registry("thing")
    reg.add("b", 2)

    @reg.register("a")
    def _a() -> int:
        return 1

    assert reg.get("b") == 2
    assert reg.names() == ["a", "b"]
    assert reg.names("a*") == ["a"]
    assert "a" in reg and "c" not in reg
    assert len(reg) == 2


def test_duplicate_raises():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1)
    with pytest.raises(KeyError, match="already registered"):
        reg.add("x", 2)


def test_unknown_lists_choices():
    reg: Registry[int] = Registry("thing")
    reg.add("alpha", 1)
    reg.add("beta", 2)
    with pytest.raises(UsageError, match="unknown thing 'gamma'; choose from: alpha, beta"):
        reg.get("gamma")


def test_project_registries_are_populated():
    from bench.datasets import DATASETS
    from bench.methods import METHODS

    assert {"digits", "textures"} <= set(DATASETS.names())
    assert {"ocsvm", "kde"} <= set(METHODS.names())
