"""The recorded time of a suite by method (``bench status --by-method``)."""

from __future__ import annotations

import pytest

from bench.records.record import Record
from bench.run.jobs import Job
from bench.run.select import select_jobs
from bench.run.status import time_by_method
from tests.conftest import invoke
from tests.records import record, write_all


def _timed(job: Job, start: str, total: float, fit: float, score: float,
           status: str = "ok") -> Record:
    rec = record(job.suite, job.method, job.dataset, job.task, job.seed, {"image_auroc": 0.9},
                 overrides=job.overrides_dict, status=status)
    assert rec["id"] == job.id
    rec.update(created=start, timing_s={"total": total, "fit": fit, "score": score, "load": 0.1})
    return Record.from_json(rec)


@pytest.fixture(scope="module")
def demo_jobs() -> list[Job]:
    return select_jobs("demo", check_data=False)[1]


def _pick(jobs: list[Job], method: str, n: int) -> list[Job]:
    return [j for j in jobs if j.method == method][:n]


def test_totals_means_and_span(demo_jobs):
    mkd, ocsvm = _pick(demo_jobs, "mkd", 3), _pick(demo_jobs, "ocsvm", 2)
    recs = [
        _timed(mkd[0], "2025-01-01T00:00:00+00:00", 20.0, 12.0, 7.0),
        _timed(mkd[1], "2025-01-01T00:00:10+00:00", 30.0, 20.0, 9.0),
        _timed(mkd[2], "2025-01-01T00:00:00+00:00", 99.0, 1.0, 1.0, status="failed"),
        _timed(ocsvm[0], "2025-01-01T00:00:05+00:00", 1.0, 0.5, 0.25),
        _timed(ocsvm[1], "2025-01-01T00:00:06+01:00", 3.0, 1.5, 0.75),  # 1 h earlier in UTC
    ]
    t = time_by_method("demo", recs)
    assert [m.method for m in t.methods] == ["mkd", "ocsvm"]
    m, o = t.methods
    assert (m.jobs, m.total_s, m.mean_s, m.fit_mean_s, m.score_mean_s) == (2, 50.0, 25.0, 16.0,
                                                                           8.0)
    assert (o.jobs, o.total_s, o.mean_s, o.fit_mean_s, o.score_mean_s) == (2, 4.0, 2.0, 1.0, 0.5)
    assert t.jobs == 4 and t.total_s == 54.0
    # from 23:00:06 the day before (the +01:00 record) to 00:00:40 (10 s + 30 s)
    assert t.span_s == pytest.approx(3600 - 6 + 40)
    only = time_by_method("demo", recs, jobs=[mkd[0], ocsvm[0]])
    assert only.jobs == 2 and only.total_s == 21.0 and only.span_s == 20.0


def test_no_records_no_span():
    t = time_by_method("demo", [])
    assert t.methods == [] and t.jobs == 0 and t.total_s == 0 and t.span_s is None


def test_status_by_method_cli(cli, results, demo_jobs):
    recs = [_timed(j, "2025-01-01T00:00:00+00:00", 10.0, 6.0, 3.0)
            for j in _pick(demo_jobs, "mkd", 2) + _pick(demo_jobs, "kde", 1)]
    write_all(results, recs)
    res = invoke(cli, results, "status", "--suite", "demo", "--by-method")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "demo: recorded time by method" in out
    assert "mkd" in out and "kde" in out and "10.0 s" in out and "6.0 s" in out
    assert "demo: 3 ok job(s), 30 s of job time; wall clock from the first start to the last " \
           "end: 10 s" in " ".join(out.split())
    plain = invoke(cli, results, "status", "--suite", "demo")
    assert "by method" not in plain.output
