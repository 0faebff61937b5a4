"""The runner: resume, claim, run the rest in parallel, isolate failures, show progress.

Jobs whose record exists with status ``ok`` are skipped (resume), unless the record is stale (its
config differs from what the job resolves to today, :mod:`bench.run.stale`): then the run is
refused in one line, or with ``rerun_stale`` those jobs run again. ``failed`` records are kept
and skipped too unless ``retry_failed``. The rest run:

- ``backend="local"``: in this process when ``n_jobs == 1`` (so a nested progress bar can follow
  the epochs), else in loky worker processes;
- ``backend="dask"``: one task per job on a ``distributed.Client``, connected to
  ``scheduler`` (an existing cluster: Slurm/PBS through dask-jobqueue, ...) or to a
  ``LocalCluster`` of ``n_jobs`` single-threaded worker processes.

The store is the only state the runners share. Before a job runs, its worker claims it in the
store (an exclusive file create), checks that no record appeared since the plan was made, and
refreshes the claim while the job runs; a job claimed by a live runner is left to it. So two
runners on one suite, on one machine or on several over a shared filesystem, write each record
once, and the claims of a killed runner are taken over (at once for a dead process on the same
host, after ``claim_timeout`` seconds otherwise). With ``timeout`` every job runs in a child
process that is killed at the limit (:mod:`bench.run.isolate`); without it, a loky worker that dies
(a segfault, the out-of-memory killer) costs a rerun of the jobs its pool held, each in a child
process of its own, so that the culprit is recorded as ``crashed`` and the run goes on.
Workers pin GPUs round-robin and share the cores (:mod:`bench.run.workers`). Each job is
dispatched by :mod:`bench.run.dispatch`; the backends live in :mod:`bench.run.backends`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.console import Console

from bench.core.errors import UsageError
from bench.records.record import JobSummary
from bench.records.store import Store
from bench.run.backends import BACKENDS
from bench.run.backends.dask import dask_client, run_dask
from bench.run.backends.local import run_in_process, run_local
from bench.run.dispatch import NotRun, Outcome, RunOptions
from bench.run.display import Display
from bench.run.jobs import Job
from bench.run.stale import stale_jobs

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "RunOptions", "RunReport", "plan", "run"]


@dataclass
class RunReport:
    """What happened: jobs run now, and jobs skipped (record exists, or claimed elsewhere)."""

    selected: int = 0
    skipped_ok: list[Job] = field(default_factory=list)
    skipped_failed: list[Job] = field(default_factory=list)
    #: jobs that another live runner held when this one reached them
    skipped_running: list[Job] = field(default_factory=list)
    results: list[JobSummary] = field(default_factory=list)

    @property
    def failed(self) -> list[JobSummary]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped_failed


def plan(jobs: Sequence[Job], store: Store, retry_failed: bool = False
         ) -> tuple[list[Job], list[Job], list[Job]]:
    """Split jobs into (to run, already ok, already failed and not retried)."""
    todo, done, failed = [], [], []
    for job in jobs:
        status = store.status(job)
        if status == "ok":
            done.append(job)
        elif status == "failed" and not retry_failed:
            failed.append(job)
        else:
            todo.append(job)
    return todo, done, failed


def run(
    jobs: Sequence[Job],
    options: RunOptions,
    *,
    console: Console | None = None,
    quiet: bool = False,
    on_result: Callable[[JobSummary], None] | None = None,
) -> RunReport:
    """Run every job of ``jobs`` that has no usable record yet."""
    if options.backend not in BACKENDS:
        raise UsageError(f"unknown backend {options.backend!r}; choose from: {', '.join(BACKENDS)}")
    if options.scheduler and options.backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    store = Store(options.results_root)
    todo, done, failed = plan(jobs, store, options.retry_failed)
    stale = stale_jobs(done, store)
    if stale and not options.rerun_stale:
        raise UsageError(f"{len(stale)} ok record(s) of this selection were made with a config "
                         "that differs from what their method and preset resolve to today, e.g. "
                         f"{stale[0].describe()}: rerun them with --rerun-stale (bench status "
                         "counts them)")
    if stale:
        again = {s.job.id for s in stale}
        todo += [j for j in done if j.id in again]
        done = [j for j in done if j.id not in again]
    report = RunReport(selected=len(jobs), skipped_ok=done, skipped_failed=failed)
    if not todo:
        return report
    for suite in sorted({job.suite for job in todo}):  # one line now, not a failure per job
        store.check_writable(suite)
    for job in todo:  # an unreadable record is rerun, but never overwritten
        store.set_aside(job)
    planned = {job.id: store.fingerprint(job) for job in todo}
    by_id = {job.id: job for job in todo}
    display = Display(len(todo), console, quiet)

    def collect(outcome: Outcome) -> None:
        display.finished(outcome.job_id)
        job = by_id[outcome.job_id]
        if outcome.not_run is NotRun.HELD_ELSEWHERE:
            report.skipped_running.append(job)
        elif outcome.not_run is NotRun.FINISHED_ELSEWHERE:  # since the plan was made
            (report.skipped_ok if store.status(job) == "ok" else report.skipped_failed).append(job)
        elif outcome.summary is not None:
            report.results.append(outcome.summary)
            if on_result is not None:
                on_result(outcome.summary)

    n_jobs = max(1, min(options.n_jobs, len(todo)))
    with contextlib.ExitStack() as stack:
        client = (stack.enter_context(dask_client(options.scheduler, n_jobs))
                  if options.backend == "dask" else None)  # connect before the display starts
        stack.enter_context(display.progress)
        if client is not None:
            run_dask(todo, options, client, n_jobs, planned, collect)
        elif n_jobs == 1:
            run_in_process(todo, options, planned, display, collect)
        else:
            run_local(todo, options, n_jobs, planned, display, collect)
    return report
