"""Where a suite stands: done / failed / running / pending jobs, and an ETA from past timings.

A job is *done* when its record says ``ok`` (*stale* too when that record's config differs from
what the job resolves to today, :mod:`bench.run.stale`); *running* when a live claim holds it (a
failed job being retried counts as running); *failed* when its record says ``failed``; *pending*
otherwise.

The ETA is the work left divided by the workers. A job's expected duration is the median
``timing_s.total`` of the suite's ok records with the same method, variant and dataset, else the
same method and dataset, else the same method, else every ok record of the suite. The work left
is the sum over pending jobs, plus, for running jobs, what remains of their expected duration
since they were claimed. Failed jobs are left out (they only run again with --retry-failed).
Workers: as given, else the number of running jobs (at least 1). No ok record: no ETA.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.records.record import Record
from bench.records.store import Store
from bench.run.claims import DEFAULT_CLAIM_TIMEOUT, Claims
from bench.run.jobs import Job
from bench.run.stale import Stale, stale_records


@dataclass(frozen=True)
class SuiteProgress:
    suite: str
    jobs: int
    done: int
    failed: int
    running: int
    pending: int
    recorded_s: float
    eta_s: float | None
    workers: int
    #: live claims of this suite's selected jobs, with the job's ``label`` and ``elapsed_s``
    live: list[dict[str, Any]] = field(default_factory=list)
    #: done jobs whose record's config differs from today's resolution (:mod:`bench.run.stale`)
    stale: list[Stale] = field(default_factory=list)


def _keys(method: str, overrides: Any, dataset: str) -> list[tuple[Any, ...]]:
    """Most to least specific: what a job's duration is estimated from."""
    ov = json.dumps(overrides or {}, sort_keys=True)
    return [(method, ov, dataset), (method, dataset), (method,), ()]


def _estimator(records: Sequence[Record]) -> Callable[[Job], float | None]:
    """Expected seconds of a job, from the ok records (None when there are none)."""
    times: dict[tuple[Any, ...], list[float]] = {}
    for rec in records:
        total = rec.timing_s.get("total")
        if not rec.ok or total is None:
            continue
        j = rec.job
        for key in _keys(j.method, j.overrides_dict, j.dataset):
            times.setdefault(key, []).append(float(total))
    medians = {k: statistics.median(v) for k, v in times.items()}

    def expected(job: Job) -> float | None:
        for key in _keys(job.method, job.overrides_dict, job.dataset):
            if key in medians:
                return medians[key]
        return None

    return expected


def suite_progress(store: Store, suite: str, jobs: Sequence[Job], *, workers: int | None = None,
                   claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
                   now: float | None = None) -> SuiteProgress:
    """Counts and ETA for ``jobs`` of ``suite`` (see the module docstring for the rules)."""
    now = time.time() if now is None else now
    records = store.records(suite)
    by_id = {r.id: r for r in records}
    live = {c["job_id"]: c for c in Claims(store).listing(suite, claim_timeout) if not c["stale"]}
    expected = _estimator(records)
    counts = {"done": 0, "failed": 0, "running": 0, "pending": 0}
    work, unknown = 0.0, False
    running: list[dict[str, Any]] = []
    for job in jobs:
        rec = by_id.get(job.id)
        status = None if rec is None else rec.status
        if status == "ok":
            counts["done"] += 1
            continue
        if job.id in live:
            claim = live[job.id]
            elapsed = max(0.0, now - float(claim.get("claimed", now)))
            running.append({**claim, "label": job.label(), "elapsed_s": elapsed})
            counts["running"] += 1
            est = expected(job)
            left = None if est is None else max(0.0, est - elapsed)
        elif status == "failed":
            counts["failed"] += 1
            continue
        else:
            counts["pending"] += 1
            left = expected(job)
        if left is None:
            unknown = True
        else:
            work += left
    n_workers = workers or max(1, counts["running"])
    recorded = sum(float(r.timing_s.get("total") or 0.0) for r in records)
    eta = None if unknown else work / n_workers
    return SuiteProgress(suite=suite, jobs=len(jobs), recorded_s=recorded, eta_s=eta,
                         workers=n_workers, live=running, stale=stale_records(jobs, records),
                         **counts)


# ------------------------------------------------------------------------- time by method


@dataclass(frozen=True)
class MethodTime:
    """Recorded time of one method's ok jobs in a suite (seconds)."""

    method: str
    jobs: int
    total_s: float
    mean_s: float
    fit_mean_s: float | None
    score_mean_s: float | None


@dataclass(frozen=True)
class SuiteTime:
    """Recorded time of a suite's ok jobs, by method.

    ``total_s`` sums the jobs' own times (worker time: the wall time on one worker);
    ``span_s`` is the wall clock from the first job's start to the last job's end (the
    records' ``created`` + ``timing_s.total``), the suite's wall time when its jobs ran in one
    go; None without timestamps.
    """

    suite: str
    methods: list[MethodTime]
    jobs: int
    total_s: float
    span_s: float | None


def _started(rec: Record) -> float | None:
    """When the job started (the record's ``created``, seconds since the epoch)."""
    try:
        return datetime.strptime(rec.created, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def time_by_method(suite: str, records: Sequence[Record],
                   jobs: Sequence[Job] | None = None) -> SuiteTime:
    """Per method: the ok jobs, their summed and mean time, mean fit and score time.

    ``jobs``: count only the records of these jobs (the suite's current selection).
    """
    wanted = None if jobs is None else {j.id for j in jobs}
    by_method: dict[str, list[dict[str, float]]] = {}
    starts, ends = [], []
    for rec in records:
        timing = rec.timing_s
        if not rec.ok or timing.get("total") is None:
            continue
        if wanted is not None and rec.id not in wanted:
            continue
        by_method.setdefault(rec.job.method, []).append(timing)
        start = _started(rec)
        if start is not None:
            starts.append(start)
            ends.append(start + float(timing["total"]))
    rows = []
    for method in sorted(by_method):
        timings = by_method[method]
        totals = [float(t["total"]) for t in timings]
        rows.append(MethodTime(
            method=method, jobs=len(timings), total_s=sum(totals),
            mean_s=sum(totals) / len(totals),
            fit_mean_s=_mean([float(t["fit"]) for t in timings if t.get("fit") is not None]),
            score_mean_s=_mean([float(t["score"]) for t in timings
                                if t.get("score") is not None])))
    span = max(ends) - min(starts) if starts else None
    return SuiteTime(suite=suite, methods=rows, jobs=sum(r.jobs for r in rows),
                     total_s=sum(r.total_s for r in rows), span_s=span)
