"""The converged window of a training history is explicit, configurable, recorded and captioned."""

import json
from dataclasses import dataclass

import pytest

from bench.datasets.base import TaskData
from bench.methods.base import RunContext
from bench.methods.classic import OCSVMConfig, OneClassSVMDetector
from bench.records.record import Record
from bench.records.store import Store
from bench.report.aggregate import build_tables
from bench.report.render import caption
from bench.run.execute import converged_epochs, converged_window, run_job, summarize_history
from bench.run.jobs import Job

HISTORY = [{"epoch": e, "image_auroc": v}
           for e, v in ((0, 0.5), (2, 0.7), (4, 0.8), (6, 0.9), (8, 0.95), (9, 0.97))]


def test_default_window_is_the_second_half_of_training():
    assert converged_epochs(HISTORY) == [6, 8, 9]  # epoch >= 9 / 2
    out = summarize_history(HISTORY)
    assert out["image_auroc_converged_mean"] == pytest.approx((0.9 + 0.95 + 0.97) / 3)
    assert out["image_auroc_converged_n"] == 3
    assert out["image_auroc_best_on_test_optimistic"] == pytest.approx(0.97)


def test_last_k_window():
    assert converged_epochs(HISTORY, 2) == [8, 9]
    out = summarize_history(HISTORY, 2)
    assert out["image_auroc_converged_mean"] == pytest.approx((0.95 + 0.97) / 2)
    assert out["image_auroc_converged_n"] == 2
    assert converged_window(HISTORY, 2) == {"rule": "last 2 evaluations", "last": 2,
                                            "epochs": [8, 9]}
    assert converged_window([], 2) is None


@dataclass(frozen=True, kw_only=True)
class _HistConfig(OCSVMConfig):
    converged_window: int = 0


class _Hist(OneClassSVMDetector):
    """The one-class SVM with a made-up training history."""

    Config = _HistConfig  # type: ignore[assignment]

    def fit(self, train: TaskData, ctx: RunContext) -> "_Hist":
        super().fit(train, ctx)
        self.history_ = [dict(h) for h in HISTORY]
        return self


@pytest.fixture
def hist_method(monkeypatch):
    from bench.methods import METHODS
    from bench.methods.base import MethodSpec

    monkeypatch.setitem(METHODS._items, "hist",
                        MethodSpec(name="hist", cls=_Hist, defaults={}, summary="test only"))


@pytest.mark.parametrize(("last", "rule", "epochs"), [
    (0, "second half of training (epoch >= last evaluated epoch / 2)", [6, 8, 9]),
    (2, "last 2 evaluations", [8, 9])])
def test_the_window_is_recorded_and_named_in_the_caption(tmp_path, hist_method, last, rule,
                                                         epochs):
    overrides = {"converged_window": last} if last else {}
    job = Job.make("w", "hist", "digits", "0", 0, overrides)
    summary = run_job(job, results_root=tmp_path)
    assert summary.status == "ok", summary.error
    rec = Record.from_json(json.loads((tmp_path / "runs" / "w" / f"{job.id}.json").read_text()))
    assert rec.converged_window == {"rule": rule, "last": last, "epochs": epochs}
    assert rec.metrics["image_auroc_converged_n"] == len(epochs)
    df = Store(tmp_path).load("w")
    (t,) = build_tables(df, "image_auroc_converged_mean")
    assert f"converged window: {rule}" in caption(t)
    (t,) = build_tables(df, "image_auroc_best_on_test_optimistic")
    assert "converged window" not in caption(t)  # the best is over all evaluations


def test_undefined_evaluations_are_not_counted():
    history = [{"epoch": 1, "pixel_auroc": 0.5}, {"epoch": 2, "pixel_auroc": float("nan")},
               {"epoch": 3, "pixel_auroc": 0.7}, {"epoch": 4, "pixel_auroc": 0.9}]
    out = summarize_history(history)  # window: epochs 2, 3, 4; epoch 2 undefined
    assert out["pixel_auroc_converged_n"] == 2
    assert out["pixel_auroc_converged_mean"] == pytest.approx(0.8)
    assert out["pixel_auroc_best_on_test_optimistic"] == pytest.approx(0.9)
    nothing = summarize_history([{"epoch": 1, "pixel_auroc": float("nan")}])
    assert "pixel_auroc_converged_n" not in nothing
