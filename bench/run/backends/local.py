"""The local backend: jobs in this process (``n_jobs == 1``) or in loky worker processes.

A loky worker that dies (a segfault, the out-of-memory killer) makes loky stop every worker;
the jobs that pool held are then rerun each in a child process of its own, so that the culprit
is recorded as ``crashed`` and the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psutil
from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from bench.core.errors import BenchError
from bench.records.store import Store
from bench.run.claims import Claims
from bench.run.dispatch import Outcome, RunOptions, dispatch
from bench.run.display import Display
from bench.run.jobs import Job
from bench.run.workers import (
    Placement,
    adopt,
    local_slot,
    pin_threads,
    pinned_threads,
    registrations,
    threads_per_worker,
)

log = logging.getLogger(__name__)
Collect = Callable[[Outcome], None]


def run_in_process(todo: Sequence[Job], options: RunOptions, planned: dict[str, str | None],
                   display: Display, collect: Collect) -> None:
    """One job after the other in this process (a nested bar follows the epochs)."""
    placement = Placement(slot=0, threads=threads_per_worker(1, options.deterministic),
                          worker="main")
    # deterministic: the fixed thread count here too; otherwise this process's own setting
    pinned = (pinned_threads(placement.threads) if options.deterministic
              else contextlib.nullcontext())
    with pinned:
        for job in todo:
            collect(dispatch(job, options, placement, planned[job.id], registrations(job),
                             display.follow(job)))


def _local_worker(job: Job, options: RunOptions, planned: str | None, regs: dict[str, Any],
                  threads: int, events: Any, slots: tuple[str, Any, Any]) -> Outcome:
    slot = local_slot(*slots)
    pin_threads(threads)
    adopt(regs)

    def progress(done: int, total: int) -> None:
        events.put((job.id, job.label(), done, total))

    placement = Placement(slot=slot, threads=threads, worker=f"loky-{slot}")
    return dispatch(job, options, placement, planned, regs, progress)


def run_local(todo: Sequence[Job], options: RunOptions, n_jobs: int,
              planned: dict[str, str | None], display: Display, collect: Collect) -> None:
    """``n_jobs`` loky worker processes; epoch events come back through a manager queue."""
    manager = multiprocessing.Manager()
    events = manager.Queue()
    slots = (uuid.uuid4().hex, manager.Value("i", 0), manager.Lock())
    stop = threading.Event()
    threads = threads_per_worker(n_jobs, options.deterministic)

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
    pending = list(todo)
    try:
        while pending:
            finished: set[str] = set()
            try:
                parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
                for outcome in parallel(
                        delayed(_local_worker)(job, options, planned[job.id], registrations(job),
                                               threads, events, slots) for job in pending):
                    finished.add(outcome.job_id)
                    collect(outcome)
                return
            except TerminatedWorkerError as exc:
                pending = [job for job in pending if job.id not in finished]
                pending = _recover(pending, exc, options, threads, planned, display, collect)
    finally:
        stop.set()
        reader.join(timeout=2)
        manager.shutdown()


def _recover(pending: list[Job], exc: Exception, options: RunOptions, threads: int,
             planned: dict[str, str | None], display: Display, collect: Collect) -> list[Job]:
    """After a worker process died (a segfault, the kernel's out-of-memory killer): loky has
    stopped every worker. Collect the jobs that finished unreported, rerun the jobs that were
    running (each in a child process of its own, so that the one that crashed is recorded as
    ``crashed`` and the others complete), and return the jobs not started yet.
    """
    _wait_for_loky_workers_to_die()
    store = Store(options.results_root)
    claims = Claims(store)
    rest: list[Job] = []
    suspects: list[Job] = []
    for job in pending:
        if store.fingerprint(job) != planned[job.id]:  # finished before its worker went down
            record = store.read(job)
            if record is not None:
                collect(Outcome.ran(record.summary()))
                continue
        (suspects if claims.abandoned(job) else rest).append(job)
    if not suspects:  # nothing to blame: do not loop on a crash that would come again
        raise BenchError(f"a worker process died and no running job was found to blame "
                         f"({str(exc).splitlines()[0]}); finished results are kept, and "
                         f"--timeout runs each job in a process of its own") from exc
    log.warning("a worker process died; rerunning %d job(s) it may have held, each in a "
                "process of its own", len(suspects))
    placement = Placement(slot=0, threads=threads, worker="rerun")
    for job in suspects:
        collect(dispatch(job, options, placement, planned[job.id], registrations(job),
                         display.follow(job), isolate=True))
    return rest


def _wait_for_loky_workers_to_die(timeout: float = 30.0) -> None:
    """loky reports a broken pool first and kills its other workers just after: wait for them,
    so that every claim they held is seen as abandoned."""
    workers = []
    for child in psutil.Process().children():
        try:
            if "LokyProcess" in " ".join(child.cmdline()):  # not its resource tracker
                workers.append(child)
        except psutil.Error:
            continue
    psutil.wait_procs(workers, timeout=timeout)
