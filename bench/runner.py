"""The runner: resume, run the rest in parallel, isolate failures, show progress.

Jobs whose record exists with status ``ok`` are skipped (resume); ``failed`` records are kept and
skipped too unless ``retry_failed``. The rest run through joblib: in this process when
``n_jobs == 1`` (so a nested progress bar can follow the epochs), else in loky worker processes,
each pinned to ``torch.set_num_threads(cores // n_jobs)`` so that workers do not oversubscribe
the cores. Every worker writes its own record as soon as its job ends, so finished results
survive a crash of the runner.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.execute import run_job
from bench.jobs import Job
from bench.store import Store


@dataclass(frozen=True)
class RunOptions:
    results_root: Path
    data_root: Path | None = None
    device: str = "auto"
    n_jobs: int = 1
    deterministic: bool = False
    retry_failed: bool = False


@dataclass
class RunReport:
    """What happened: jobs run now, and jobs skipped because a record already existed."""

    selected: int = 0
    skipped_ok: list[Job] = field(default_factory=list)
    skipped_failed: list[Job] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] != "ok"]

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


def threads_per_worker(n_jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, n_jobs))


def _worker(job: Job, options: RunOptions, threads: int, events: Any) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)

    def progress(done: int, total: int) -> None:
        if events is not None:
            events.put((job.id, job.label(), done, total))

    return run_job(job, results_root=options.results_root, data_root=options.data_root,
                   device=options.device, progress=progress, deterministic=options.deterministic)


class _Display:
    """A rich progress display: one bar over jobs, one bar per running job over its epochs."""

    def __init__(self, total: int, console: Console | None, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=quiet, transient=False,
        )
        self.jobs_task = self.progress.add_task("jobs", total=total)
        self.inner: dict[str, TaskID] = {}
        self.done: set[str] = set()
        self.lock = threading.Lock()

    def epoch(self, job_id: str, label: str, done: int, total: int) -> None:
        with self.lock:
            if job_id in self.done:  # a late event from a worker whose job already ended
                return
            tid = self.inner.get(job_id)
            if tid is None:
                tid = self.progress.add_task(f"  {label}", total=total)
                self.inner[job_id] = tid
            self.progress.update(tid, completed=done, total=total)

    def finished(self, result: dict[str, Any]) -> None:
        with self.lock:
            self.done.add(result["id"])
            tid = self.inner.pop(result["id"], None)
            if tid is not None:
                self.progress.remove_task(tid)
            self.progress.advance(self.jobs_task)


def run(
    jobs: Sequence[Job],
    options: RunOptions,
    *,
    console: Console | None = None,
    quiet: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Run every job of ``jobs`` that has no usable record yet."""
    store = Store(options.results_root)
    todo, done, failed = plan(jobs, store, options.retry_failed)
    report = RunReport(selected=len(jobs), skipped_ok=done, skipped_failed=failed)
    if not todo:
        return report
    display = _Display(len(todo), console, quiet)
    n_jobs = max(1, min(options.n_jobs, len(todo)))
    threads = threads_per_worker(n_jobs)

    def collect(result: dict[str, Any]) -> None:
        report.results.append(result)
        display.finished(result)
        if on_result is not None:
            on_result(result)

    with display.progress:
        if n_jobs == 1:
            for job in todo:
                def progress(d: int, t: int, job: Job = job) -> None:
                    display.epoch(job.id, job.label(), d, t)
                collect(run_job(job, results_root=options.results_root,
                                data_root=options.data_root, device=options.device,
                                progress=progress, deterministic=options.deterministic))
        else:
            _run_parallel(todo, options, n_jobs, threads, display, collect)
    return report


def _run_parallel(todo: Sequence[Job], options: RunOptions, n_jobs: int, threads: int,
                  display: _Display, collect: Callable[[dict[str, Any]], None]) -> None:
    import multiprocessing

    from joblib import Parallel, delayed

    manager = multiprocessing.Manager()
    events = manager.Queue()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                job_id, label, d, t = events.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            display.epoch(job_id, label, d, t)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
        for result in parallel(delayed(_worker)(job, options, threads, events) for job in todo):
            collect(result)
    finally:
        stop.set()
        reader.join(timeout=2)
        manager.shutdown()
