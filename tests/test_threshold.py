"""The image F1 at a threshold taken from the training scores: run, record, table, CLI."""

import json

import numpy as np
import pytest

from bench.core.metrics import DEFAULT_THRESHOLD_QUANTILE, image_f1_at, image_f1_max
from bench.methods.base import Scores
from bench.methods.classic import OneClassSVMDetector
from bench.records.record import Record
from bench.records.store import Store
from bench.report.aggregate import build_tables
from bench.report.render import caption
from bench.run.execute import run_job
from bench.run.jobs import Job
from tests.conftest import invoke
from tests.records import record, write_all


def test_run_scores_the_training_set_and_records_the_threshold(tmp_path, monkeypatch):
    seen: list[int] = []
    original = OneClassSVMDetector.score

    def spy(self, data, ctx):
        seen.append(len(data))
        return original(self, data, ctx)

    monkeypatch.setattr(OneClassSVMDetector, "score", spy)
    job = Job.make("thr", "ocsvm", "textures", "brick", 0)
    out = run_job(job, results_root=tmp_path, threshold_quantile=0.8)
    assert out.status == "ok", out.error
    store = Store(tmp_path)
    rec = store.read(job)
    assert seen == [rec.data["test"], rec.data["train"]]  # test first, then the training set
    thr = rec.threshold
    assert thr is not None and thr["quantile"] == 0.8 and thr["train_images"] == rec.data["train"]
    art = store.read_artifacts("thr", job.id)
    assert rec.metrics["image_f1_at_train_quantile"] == image_f1_at(art.labels, art.scores,
                                                                    thr["value"])
    assert rec.metrics["image_f1_max"] == image_f1_max(art.labels, art.scores)
    assert rec.timing_s["score_train"] >= 0
    assert json.loads(store.path(job).read_text())["threshold"]["quantile"] == 0.8
    assert store.load()["threshold_quantile"].dropna().unique().tolist() == [0.8]


def test_run_without_training_scores_leaves_no_threshold(tmp_path):
    job = Job.make("thr", "ocsvm", "textures", "brick", 0)
    with_train = run_job(job, results_root=tmp_path / "a")
    without = run_job(job, results_root=tmp_path / "b", threshold_quantile=None)
    rec = Store(tmp_path / "b").read(job)
    assert rec.threshold is None and "score_train" not in rec.timing_s
    assert "image_f1_at_train_quantile" not in rec.metrics
    assert "threshold" not in json.loads(Store(tmp_path / "b").path(job).read_text())
    # scoring the training set afterwards changes none of the test-set metrics
    assert with_train.metrics.pop("image_f1_at_train_quantile") is not None
    assert with_train.metrics == without.metrics
    assert Store(tmp_path / "a").read(job).threshold["quantile"] == DEFAULT_THRESHOLD_QUANTILE


def test_nan_training_scores_fail_the_job(tmp_path, monkeypatch):
    original = OneClassSVMDetector.score

    def nan_on_train(self, data, ctx):
        out = original(self, data, ctx)
        return out if np.any(data.labels) else Scores(image=np.full(len(data), np.nan))

    monkeypatch.setattr(OneClassSVMDetector, "score", nan_on_train)
    out = run_job(Job.make("thr", "ocsvm", "textures", "brick", 0), results_root=tmp_path)
    assert out.status == "failed" and "NaN" in (out.error or "")


def test_threshold_round_trips_and_old_records_have_none():
    rec = record("s", "ocsvm", "digits", "0", 0, {"image_f1_at_train_quantile": 0.5})
    rec["threshold"] = {"source": "training images", "quantile": 0.95, "method": "linear",
                        "value": 1.5, "train_images": 10, "rule": "anomalous iff score >= value"}
    back = Record.from_json(rec)
    assert back.threshold == rec["threshold"]
    assert Record.from_json(back.to_json()) == back
    assert Record.from_json(record("s", "ocsvm", "digits", "0", 0, {})).threshold is None


def _tables(tmp_path, metric):
    recs = []
    for method, q in (("ocsvm", 0.95), ("kde", 0.9)):
        for task in ("0", "1"):
            rec = record("s", method, "digits", task, 0,
                         {"image_f1_at_train_quantile": 0.6, "image_f1_max": 0.8})
            rec["threshold"] = {"quantile": q, "value": 0.1}
            recs.append(rec)
    return build_tables(write_all(tmp_path, recs).load(), metric, datasets=["digits"])


def test_captions_state_the_threshold_protocol(tmp_path):
    cap = caption(_tables(tmp_path, "image_f1_at_train_quantile")[0])
    for needle in ("without test labels", "q-quantile", "training images",
                   "q = 0.9 (kde); 0.95 (ocsvm)", "threshold.value", "bias:"):
        assert needle in cap, needle
    cap = caption(_tables(tmp_path / "b", "image_f1_max")[0])
    assert "best F1 over all thresholds" in cap and "test labels choose" in cap
    assert "q = " not in cap


def test_cli_quantile_option_and_table(cli, results):
    args = ("run", "--suite", "demo", "--method", "ocsvm", "--dataset", "digits", "--task", "1")
    res = invoke(cli, results, *args, "--threshold-quantile", "0.5")
    assert res.exit_code == 0, res.output
    rec = json.loads(next((results / "runs" / "demo").glob("*.json")).read_text())
    assert rec["threshold"]["quantile"] == 0.5
    table = invoke(cli, results, "table", "--suite", "demo", "--metric",
                   "image_f1_at_train_quantile", "--format", "markdown")
    assert table.exit_code == 0, table.output
    assert "q = 0.5" in table.output and "ocsvm" in table.output


@pytest.mark.parametrize("extra,needle", [
    (("--threshold-quantile", "0"), "--threshold-quantile"),
    (("--threshold-quantile", "1.5"), "--threshold-quantile"),
    (("--threshold-quantile", "0.9", "--no-train-threshold"), "drop --no-train-threshold"),
])
def test_cli_rejects_bad_quantiles(cli, results, extra, needle):
    res = invoke(cli, results, "run", "--suite", "demo", "--method", "ocsvm", "--dataset",
                 "digits", "--task", "1", *extra)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error:") and needle in lines[0]
