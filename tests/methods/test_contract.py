"""One contract test over every registered method variant (in the spirit of scikit-learn's)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.methods import METHODS
from bench.methods.base import RunContext, Scores
from tests.helpers import blobs_task

NAMES = METHODS.names()


@pytest.fixture(scope="module")
def task():
    return blobs_task(n_train=24, n_test=20, size=32, seed=0)


def build(name: str):
    spec = METHODS.get(name)
    return spec.build("", dict(spec.test_overrides))


@pytest.mark.parametrize("name", NAMES)
def test_contract(name, task):
    train, test = task
    method = build(name)
    assert method.config == METHODS.get(name).config("", METHODS.get(name).test_overrides)
    ctx = RunContext(seed=0)
    assert method.fit(train, ctx) is method, "fit must return self"
    scores = method.score(test, ctx)
    assert isinstance(scores, Scores)
    assert scores.image.shape == (len(test),) and np.isfinite(scores.image).all()
    if scores.maps is not None:
        assert scores.maps.shape == (len(test), *test.size)
        assert np.isfinite(scores.maps).all()
    assert set(scores.extra_maps) <= set(method.extra_map_protocols), "undeclared extra maps"
    for extra in scores.extra_maps.values():
        assert extra.shape == (len(test), *test.size) and np.isfinite(extra).all()
    # same seed, same scores
    again = build(name).fit(train, RunContext(seed=0)).score(test, RunContext(seed=0))
    np.testing.assert_allclose(again.image, scores.image, rtol=1e-5, atol=1e-6)
    # a synthetic defect scores above normal on average
    anomalous = test.labels == 1
    assert scores.image[anomalous].mean() > scores.image[~anomalous].mean()


@pytest.mark.parametrize("name", NAMES)
def test_config_is_frozen_and_provenance_is_plain(name):
    import dataclasses

    method = build(name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.config.image_size = 3  # type: ignore[misc]
    prov = method.provenance()
    assert set(prov) >= {"expert", "checkpoint_policy"}
