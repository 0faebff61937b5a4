"""The runner's rich display: one bar over jobs, one bar per running job over its epochs."""

from __future__ import annotations

import threading
from collections.abc import Callable

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

from bench.run.jobs import Job

ProgressFn = Callable[[int, int], None]


class Display:
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

    def follow(self, job: Job) -> ProgressFn:
        """A progress callback that moves ``job``'s epoch bar."""
        def progress(done: int, total: int) -> None:
            self.epoch(job.id, job.label(), done, total)
        return progress

    def epoch(self, job_id: str, label: str, done: int, total: int) -> None:
        with self.lock:
            if job_id in self.done:  # a late event from a worker whose job already ended
                return
            tid = self.inner.get(job_id)
            if tid is None:
                tid = self.progress.add_task(f"  {label}", total=total)
                self.inner[job_id] = tid
            self.progress.update(tid, completed=done, total=total)

    def finished(self, job_id: str) -> None:
        with self.lock:
            self.done.add(job_id)
            tid = self.inner.pop(job_id, None)
            if tid is not None:
                self.progress.remove_task(tid)
            self.progress.advance(self.jobs_task)
