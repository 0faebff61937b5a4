"""What a method declares for the rest of the harness to read, checked for every registered
method: its presets table (one per method, looked up by the base class), the metrics its
extra maps feed and how ``bench perf`` runs it."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from bench.core.metrics import OWN_MAP_METRICS
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.methods.base import ANY_FAMILY, Method, RunContext, Scores
from bench.perf.measure import FLAGS

NAMES = METHODS.names()
FAMILIES = sorted({DATASETS.get(name).family for name in DATASETS.names()})


@pytest.mark.parametrize("name", NAMES)
def test_presets_name_known_families_and_resolve(name):
    spec = METHODS.get(name)
    assert set(spec.cls.presets) <= {*FAMILIES, ANY_FAMILY}, "a preset for no dataset family"
    for family in (*FAMILIES, ""):
        spec.config(family)  # every preset is a valid config


@pytest.mark.parametrize("name", NAMES)
def test_presets_are_read_by_the_base_class_only(name):
    cls = METHODS.get(name).cls
    assert cls.preset.__func__ is Method.preset.__func__  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES)
def test_extra_maps_feed_metrics_that_take_them(name):
    assert set(METHODS.get(name).cls.extra_map_protocols.values()) <= set(OWN_MAP_METRICS)


def test_mkd_declares_the_official_protocol_maps():
    assert METHODS.get("mkd").cls.extra_map_protocols == {"mkd_code": "pixel_auroc_mkd"}


@pytest.mark.parametrize("name", NAMES)
def test_perf_profile_names_config_fields(name):
    spec = METHODS.get(name)
    profile, fields = spec.cls.perf_profile, set(spec.fields())
    assert profile.flags <= fields and set(profile.offline) <= fields
    assert set(FLAGS) & fields <= profile.flags, "a speed switch perf cannot turn on"
    assert profile.train_variants
    for overrides in profile.train_variants.values():
        spec.config("", {**profile.offline, **overrides})  # valid settings
    for variant, baseline in profile.speedups.values():
        assert {variant, baseline} <= set(profile.train_variants)
    if profile.reference_loop is not None:
        assert callable(getattr(spec.cls, profile.reference_loop))


class _Toy(Method):
    presets: ClassVar[dict[str, dict[str, Any]]] = {ANY_FAMILY: {"image_size": 64},
                                                    "digits": {}}

    def fit(self, train: Any, ctx: RunContext) -> _Toy:
        return self

    def score(self, test: Any, ctx: RunContext) -> Scores:
        raise NotImplementedError


def test_any_family_covers_the_families_without_an_entry():
    assert _Toy.preset("mvtec") == _Toy.preset("") == {"image_size": 64}
    assert _Toy.preset("digits") == {}
    _Toy.preset("mvtec")["image_size"] = 1  # a copy: the table stays as declared
    assert _Toy.presets[ANY_FAMILY] == {"image_size": 64}
    assert Method.preset("mvtec") == {}
