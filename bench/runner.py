"""The runner: resume, claim, run the rest in parallel, isolate failures, show progress.

Jobs whose record exists with status ``ok`` are skipped (resume); ``failed`` records are kept and
skipped too unless ``retry_failed``. The rest run:

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
process that is killed at the limit (:mod:`bench.isolate`); without it, a loky worker that dies
(a segfault, the out-of-memory killer) costs a rerun of the jobs its pool held, each in a child
process of its own, so that the culprit is recorded as ``crashed`` and the run goes on.
Workers pin GPUs round-robin and share the cores (:mod:`bench.workers`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joblib.externals.loky.process_executor import TerminatedWorkerError
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

from bench.errors import BenchError, UsageError
from bench.execute import run_job, summary
from bench.jobs import Job
from bench.store import DEFAULT_CLAIM_TIMEOUT, Claim, Store
from bench.workers import (
    Placement,
    adopt,
    dask_placement,
    local_slot,
    pin_device,
    pin_threads,
    registrations,
    threads_per_worker,
)

log = logging.getLogger(__name__)
BACKENDS = ("local", "dask")
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class RunOptions:
    results_root: Path
    data_root: Path | None = None
    device: str = "auto"
    n_jobs: int = 1
    deterministic: bool = False
    retry_failed: bool = False
    backend: str = "local"
    #: address of an existing Dask scheduler; None starts a LocalCluster of ``n_jobs`` workers
    scheduler: str | None = None
    #: seconds a job may run (in its own process) before it is killed and recorded as failed
    timeout: float | None = None
    claim_timeout: float = DEFAULT_CLAIM_TIMEOUT


@dataclass
class RunReport:
    """What happened: jobs run now, and jobs skipped (record exists, or claimed elsewhere)."""

    selected: int = 0
    skipped_ok: list[Job] = field(default_factory=list)
    skipped_failed: list[Job] = field(default_factory=list)
    #: jobs that another live runner held when this one reached them
    skipped_running: list[Job] = field(default_factory=list)
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


# ---------------------------------------------------------------------- one job, in a worker
class _Heartbeat:
    """Refreshes a claim in a thread while its job runs, so that it never looks stale."""

    def __init__(self, store: Store, claim: Claim, claim_timeout: float) -> None:
        self.store, self.claim = store, claim
        self.interval = max(0.05, min(30.0, claim_timeout / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.store.refresh(self.claim):
                log.warning("claim on job %s was taken over while it ran", self.claim.path.stem)
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def execute(job: Job, options: RunOptions, placement: Placement, planned: str | None,
            regs: dict[str, Any] | None = None, progress: ProgressFn | None = None,
            isolate: bool = False) -> dict[str, Any]:
    """Claim ``job``, run it unless someone else did since ``planned``, release the claim.

    ``planned`` is the store's fingerprint of the job's record when the run was planned (None:
    no record). A different fingerprint now means another runner finished the job meanwhile.
    The job runs in a child process of its own with ``options.timeout`` or ``isolate``.
    Returns the job's summary, or ``{"id", "status": "claimed" | "done"}`` when it did not run.
    """
    store = Store(options.results_root)
    claim = store.claim(job, timeout=options.claim_timeout, info=placement.as_record(),
                        gone=placement.holder_gone)
    if claim is None:
        return {"id": job.id, "status": "claimed"}
    try:
        if store.fingerprint(job) != planned:
            return {"id": job.id, "status": "done"}
        kwargs: dict[str, Any] = {
            "results_root": options.results_root, "data_root": options.data_root,
            "device": pin_device(options.device, placement.slot),
            "deterministic": options.deterministic,
            "runner": {**placement.as_record(), "claim": claim.token}}
        with _Heartbeat(store, claim, options.claim_timeout):
            if options.timeout is not None or isolate:
                from bench.isolate import run_isolated

                return run_isolated(job, timeout=options.timeout, threads=placement.threads,
                                    run_kwargs=kwargs, registrations=regs, progress=progress)
            return run_job(job, progress=progress, **kwargs)
    finally:
        store.release(claim)


def _local_worker(job: Job, options: RunOptions, planned: str | None, regs: dict[str, Any],
                  threads: int, events: Any, slots: tuple[str, Any, Any]) -> dict[str, Any]:
    slot = local_slot(*slots)
    pin_threads(threads)
    adopt(regs)

    def progress(done: int, total: int) -> None:
        events.put((job.id, job.label(), done, total))

    placement = Placement(slot=slot, threads=threads, worker=f"loky-{slot}")
    return execute(job, options, placement, planned, regs, progress)


def _dask_worker(job: Job, options: RunOptions, planned: str | None, regs: dict[str, Any],
                 threads: int | None) -> dict[str, Any]:
    placement = dask_placement(threads)
    pin_threads(placement.threads)
    adopt(regs)
    return execute(job, options, placement, planned, regs)


# ---------------------------------------------------------------------- display
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

    def finished(self, result: dict[str, Any]) -> None:
        with self.lock:
            self.done.add(result["id"])
            tid = self.inner.pop(result["id"], None)
            if tid is not None:
                self.progress.remove_task(tid)
            self.progress.advance(self.jobs_task)


# ---------------------------------------------------------------------- the run
def run(
    jobs: Sequence[Job],
    options: RunOptions,
    *,
    console: Console | None = None,
    quiet: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Run every job of ``jobs`` that has no usable record yet."""
    if options.backend not in BACKENDS:
        raise UsageError(f"unknown backend {options.backend!r}; choose from: {', '.join(BACKENDS)}")
    if options.scheduler and options.backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    store = Store(options.results_root)
    todo, done, failed = plan(jobs, store, options.retry_failed)
    report = RunReport(selected=len(jobs), skipped_ok=done, skipped_failed=failed)
    if not todo:
        return report
    planned = {job.id: store.fingerprint(job) for job in todo}
    by_id = {job.id: job for job in todo}
    display = _Display(len(todo), console, quiet)

    def collect(result: dict[str, Any]) -> None:
        display.finished(result)
        if result["status"] == "claimed":
            report.skipped_running.append(by_id[result["id"]])
            return
        if result["status"] == "done":  # by another runner, since the plan was made
            job = by_id[result["id"]]
            (report.skipped_ok if store.status(job) == "ok" else report.skipped_failed).append(job)
            return
        report.results.append(result)
        if on_result is not None:
            on_result(result)

    n_jobs = max(1, min(options.n_jobs, len(todo)))
    with contextlib.ExitStack() as stack:
        client = (stack.enter_context(dask_client(options.scheduler, n_jobs))
                  if options.backend == "dask" else None)  # connect before the display starts
        stack.enter_context(display.progress)
        if client is not None:
            _run_dask(todo, options, client, n_jobs, planned, collect)
        elif n_jobs == 1:
            placement = Placement(slot=0, threads=threads_per_worker(1), worker="main")
            for job in todo:
                collect(execute(job, options, placement, planned[job.id],
                                registrations(job), display.follow(job)))
        else:
            _run_local(todo, options, n_jobs, planned, display, collect)
    return report


def _run_local(todo: Sequence[Job], options: RunOptions, n_jobs: int,
               planned: dict[str, str | None], display: _Display,
               collect: Callable[[dict[str, Any]], None]) -> None:
    import multiprocessing

    from joblib import Parallel, delayed

    manager = multiprocessing.Manager()
    events = manager.Queue()
    slots = (uuid.uuid4().hex, manager.Value("i", 0), manager.Lock())
    stop = threading.Event()
    threads = threads_per_worker(n_jobs)

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
                for result in parallel(
                        delayed(_local_worker)(job, options, planned[job.id], registrations(job),
                                               threads, events, slots) for job in pending):
                    finished.add(result["id"])
                    collect(result)
                return
            except TerminatedWorkerError as exc:
                pending = [job for job in pending if job.id not in finished]
                pending = _recover(pending, exc, options, threads, planned, display, collect)
    finally:
        stop.set()
        reader.join(timeout=2)
        manager.shutdown()


def _recover(pending: list[Job], exc: Exception, options: RunOptions, threads: int,
             planned: dict[str, str | None], display: _Display,
             collect: Callable[[dict[str, Any]], None]) -> list[Job]:
    """After a worker process died (a segfault, the kernel's out-of-memory killer): loky has
    stopped every worker. Collect the jobs that finished unreported, rerun the jobs that were
    running (each in a child process of its own, so that the one that crashed is recorded as
    ``crashed`` and the others complete), and return the jobs not started yet.
    """
    _wait_for_loky_workers_to_die()
    store = Store(options.results_root)
    rest: list[Job] = []
    suspects: list[Job] = []
    for job in pending:
        if store.fingerprint(job) != planned[job.id]:  # finished before its worker went down
            record = store.read(job)
            if record is not None:
                collect(summary(job, record))
                continue
        (suspects if store.abandoned(job) else rest).append(job)
    if not suspects:  # nothing to blame: do not loop on a crash that would come again
        raise BenchError(f"a worker process died and no running job was found to blame "
                         f"({str(exc).splitlines()[0]}); finished results are kept, and "
                         f"--timeout runs each job in a process of its own") from exc
    log.warning("a worker process died; rerunning %d job(s) it may have held, each in a "
                "process of its own", len(suspects))
    placement = Placement(slot=0, threads=threads, worker="rerun")
    for job in suspects:
        collect(execute(job, options, placement, planned[job.id], registrations(job),
                        display.follow(job), isolate=True))
    return rest


def _wait_for_loky_workers_to_die(timeout: float = 30.0) -> None:
    """loky reports a broken pool first and kills its other workers just after: wait for them,
    so that every claim they held is seen as abandoned."""
    import psutil

    workers = []
    for child in psutil.Process().children():
        try:
            if "LokyProcess" in " ".join(child.cmdline()):  # not its resource tracker
                workers.append(child)
        except psutil.Error:
            continue
    psutil.wait_procs(workers, timeout=timeout)


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler``, or on a LocalCluster of ``n_workers``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--backend dask needs dask and distributed: "
                         "pip install 'bench-mkd[dist]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise BenchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


#: how long a run waits for a first Dask worker (jobqueue workers may sit in a batch queue)
DASK_WAIT_FOR_WORKERS_S = 3600.0


def _run_dask(todo: Sequence[Job], options: RunOptions, client: Any, n_jobs: int,
              planned: dict[str, str | None], collect: Callable[[dict[str, Any]], None]) -> None:
    """One task per job on the cluster (jobs take minutes: no batching), results as they come.

    A worker that dies while running a job (node failure, out-of-memory killer) makes the
    scheduler retry the job elsewhere; one that dies every time it is tried
    (``distributed.scheduler.allowed-failures``) is recorded here as ``crashed``.
    """
    from distributed import KilledWorker, as_completed

    try:
        client.wait_for_workers(1, timeout=DASK_WAIT_FOR_WORKERS_S)
    except TimeoutError as exc:
        raise BenchError(f"no Dask worker joined the cluster: {exc}") from None
    threads = None if options.scheduler else threads_per_worker(n_jobs)
    futures = {client.submit(_dask_worker, job, options, planned[job.id], registrations(job),
                             threads, key=f"bench-{job.suite}-{job.id}", pure=False): job
               for job in todo}
    for future in as_completed(futures):
        job = futures[future]
        try:
            result = future.result()
        except KilledWorker as exc:
            result = _record_killed(job, options, str(exc))
        future.release()
        collect(result)


def _record_killed(job: Job, options: RunOptions, reason: str) -> dict[str, Any]:
    """The scheduler gave up on ``job``: every worker that ran it died. Record it as crashed
    (its dead worker's claim goes with it)."""
    from bench.execute import write_failure

    first = reason.splitlines()[0] if reason else ""
    out = write_failure(job, results_root=options.results_root, device=options.device,
                        deterministic=options.deterministic, runner={"backend": "dask"},
                        kind="crashed", total_s=0.0,
                        error=f"Crashed: its Dask worker died each time the job was tried (a "
                              f"segfault, or the out-of-memory killer): {first}")
    Store(options.results_root).claim_path(job).unlink(missing_ok=True)
    return out
