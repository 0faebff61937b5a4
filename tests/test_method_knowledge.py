"""Method knowledge stays in methods: the harness reads what a method declares and never names
a method itself."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from bench.core.metrics import pixel_auroc_mkd
from bench.datasets.base import TaskData
from bench.methods import METHODS
from bench.methods.base import Method, MethodSpec, RunContext, Scores
from bench.records.store import Store
from bench.run.execute import run_job
from bench.run.jobs import Job


class _Maps(Method):
    """Bright pixels are anomalous; also returns inverted maps under the name ``alt``."""

    localizes = True
    extra_map_protocols: ClassVar[dict[str, str]] = {"alt": "pixel_auroc_mkd"}
    seen: ClassVar[list[tuple[TaskData, np.ndarray]]] = []

    def fit(self, train: TaskData, ctx: RunContext) -> _Maps:
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        x = test.images.numpy().astype(np.float64).mean(axis=1)
        maps = np.abs(x - np.median(x, axis=(1, 2), keepdims=True))
        alt = 1.0 - maps / maps.max()
        self.seen.append((test, alt))
        return Scores(image=maps.reshape(len(x), -1).max(axis=1), maps=maps,
                      extra_maps={"alt": alt})


class _Undeclared(_Maps):
    extra_map_protocols: ClassVar[dict[str, str]] = {}


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, cls: type[Method]) -> dict[str, Any]:
    monkeypatch.setitem(METHODS._items, "toy_maps",
                        MethodSpec(name="toy_maps", cls=cls, defaults={}, summary="test only"))
    job = Job.make("toy", "toy_maps", "textures", "brick", 0)
    out = run_job(job, results_root=tmp_path)
    return {"summary": out, "record": Store(tmp_path).read(job)}


def test_a_declared_extra_map_feeds_its_metric(monkeypatch, tmp_path):
    _Maps.seen.clear()
    rec = _run(monkeypatch, tmp_path, _Maps)["record"]
    assert rec["status"] == "ok", rec["error"]
    test, alt = _Maps.seen[-1]
    assert test.masks is not None
    want = pixel_auroc_mkd(test.masks.numpy(), alt, test.labels)
    assert rec["metrics"]["pixel_auroc_mkd"] == pytest.approx(want)
    assert rec["pixel_protocol"]["mkd_protocol_maps"] == "method"


def test_an_undeclared_extra_map_fails_the_job(monkeypatch, tmp_path):
    out = _run(monkeypatch, tmp_path, _Undeclared)["summary"]
    assert out["status"] == "failed" and "declares no protocol" in out["error"]
