"""One contract test over every registered method variant (in the spirit of scikit-learn's):
the public check, :func:`bench.testing.check_method`, that plugins run too."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest

from bench.methods import METHODS
from bench.methods.base import Method, MethodConfig, RunContext, Scores
from bench.testing import check_method

NAMES = METHODS.names()


@pytest.mark.parametrize("name", NAMES)
def test_contract(name):
    report = check_method(name)  # raises listing the failed checks
    assert report.ok and all(c.passed for c in report.checks)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_frozen_and_provenance_is_plain(name):
    spec = METHODS.get(name)
    method = spec.build("", dict(spec.test_overrides))
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.config.image_size = 3  # type: ignore[misc]
    prov = method.provenance()
    assert set(prov) >= {"expert", "checkpoint_policy"}


# ------------------------------------------------------------ the check finds what is broken
@dataclasses.dataclass(frozen=True, kw_only=True)
class _MeanConfig(MethodConfig):
    sign: float = 1.0


class _Mean(Method):
    """Distance to the mean training image (tiny, correct)."""

    Config = _MeanConfig
    config: _MeanConfig
    localizes: ClassVar[bool] = True

    def fit(self, train, ctx: RunContext) -> _Mean:
        self.mean_ = train.batch(slice(None)).mean(dim=0)
        return self

    def score(self, test, ctx: RunContext) -> Scores:
        maps = (test.batch(slice(None)) - self.mean_).abs().mean(dim=1).numpy()
        return Scores(image=self.config.sign * maps.mean(axis=(1, 2)), maps=maps)


class _Inverted(_Mean):
    def score(self, test, ctx):
        return dataclasses.replace(super().score(test, ctx),
                                   image=-super().score(test, ctx).image)


class _NoisyNaN(_Mean):
    localizes: ClassVar[bool] = False

    def score(self, test, ctx):
        image = np.random.default_rng().normal(size=len(test))
        image[0] = np.nan
        return Scores(image=image)


class _Talkative(_Mean):
    extra_map_protocols: ClassVar[dict[str, Any]] = {"mine": "pixel_auroc_mkd"}

    def fit(self, train, ctx):
        print("epoch 1")
        return super().fit(train, ctx)


def _failed(report) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if c.passed is False}


def test_check_method_passes_a_correct_class():
    report = check_method(_Mean)
    assert report.ok and [c.outcome for c in report.checks] == ["pass"] * len(report.checks)


def test_check_method_names_each_broken_property():
    failed = _failed(check_method(_Inverted, raise_on_failure=False))
    assert list(failed) == ["higher = more anomalous"]
    assert "higher score must mean more anomalous" in failed["higher = more anomalous"]
    failed = _failed(check_method(_NoisyNaN, raise_on_failure=False))
    assert "NaN" in failed["image scores"]
    failed = _failed(check_method(_Talkative, raise_on_failure=False))
    assert "printed 'epoch 1'" in failed["fit"]


def test_check_method_skips_what_depends_on_a_failure_and_raises_one_message():
    report = check_method(_Mean, overrides={"sign": "x"}, raise_on_failure=False)
    assert [c.name for c in report.failures] == ["configs"]
    assert {c.name for c in report.checks if c.passed is None} >= {"fit", "pickling"}
    with pytest.raises(AssertionError, match=r"(?s)FAILED.*configs: "):
        report.raise_for_failures()
    not_a_method = check_method(dict, raise_on_failure=False)  # type: ignore[arg-type]
    assert "neither a Method subclass nor a MethodSpec" in not_a_method.failures[0].detail
