"""The Dask backend: one ``distributed`` task per job on a cluster.

Connected to ``scheduler`` (an existing cluster: Slurm/PBS through dask-jobqueue, ...) or to a
``LocalCluster`` of ``n_jobs`` single-threaded worker processes. ``distributed`` is an optional
dependency (``pip install 'bench-mkd[dist]'``), so it is imported inside the functions that use
it: the core install runs without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench.core.errors import BenchError, UsageError
from bench.records.record import JobSummary
from bench.records.store import Store
from bench.run.claims import Claims
from bench.run.dispatch import Outcome, RunOptions, dispatch
from bench.run.execute import write_failure
from bench.run.jobs import Job
from bench.run.workers import adopt, dask_placement, pin_threads, registrations, threads_per_worker

#: how long a run waits for a first Dask worker (jobqueue workers may sit in a batch queue)
DASK_WAIT_FOR_WORKERS_S = 3600.0
Collect = Callable[[Outcome], None]


def _dask_worker(job: Job, options: RunOptions, planned: str | None, regs: dict[str, Any],
                 threads: int | None) -> Outcome:
    placement = dask_placement(threads, options.deterministic)
    pin_threads(placement.threads)
    adopt(regs)
    return dispatch(job, options, placement, planned, regs)


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler``, or on a LocalCluster of ``n_workers``."""
    try:
        from distributed import Client  # optional dependency
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
    with local_cluster(n_workers) as cluster, Client(cluster) as client:
        yield client


def local_cluster(n_workers: int) -> Any:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes, without a dashboard.

    The scheduler always runs an HTTP server (health and metrics routes); ``dashboard_address``
    None does not stop it, it only makes it take the dashboard's port 8787 (or warn and take
    another when that is busy). So it goes to a free port on loopback, with no dashboard.
    """
    from distributed import LocalCluster  # optional dependency

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False})


def run_dask(todo: Sequence[Job], options: RunOptions, client: Any, n_jobs: int,
             planned: dict[str, str | None], collect: Collect) -> None:
    """One task per job on the cluster (jobs take minutes: no batching), results as they come.

    A worker that dies while running a job (node failure, out-of-memory killer) makes the
    scheduler retry the job elsewhere; one that dies every time it is tried
    (``distributed.scheduler.allowed-failures``) is recorded here as ``crashed``.
    """
    from distributed import KilledWorker, as_completed  # optional dependency

    try:
        client.wait_for_workers(1, timeout=DASK_WAIT_FOR_WORKERS_S)
    except TimeoutError as exc:
        raise BenchError(f"no Dask worker joined the cluster: {exc}") from None
    threads = None if options.scheduler else threads_per_worker(n_jobs, options.deterministic)
    futures = {client.submit(_dask_worker, job, options, planned[job.id], registrations(job),
                             threads, key=f"bench-{job.suite}-{job.id}", pure=False): job
               for job in todo}
    for future in as_completed(futures):
        job = futures[future]
        try:
            outcome = future.result()
        except KilledWorker as exc:
            outcome = Outcome.ran(_record_killed(job, options, str(exc)))
        future.release()
        collect(outcome)


def _record_killed(job: Job, options: RunOptions, reason: str) -> JobSummary:
    """The scheduler gave up on ``job``: every worker that ran it died. Record it as crashed
    (its dead worker's claim goes with it)."""
    first = reason.splitlines()[0] if reason else ""
    out = write_failure(job, results_root=options.results_root, device=options.device,
                        deterministic=options.deterministic, runner={"backend": "dask"},
                        kind="crashed", total_s=0.0,
                        error=f"Crashed: its Dask worker died each time the job was tried (a "
                              f"segfault, or the out-of-memory killer): {first}")
    Claims(Store(options.results_root)).path(job).unlink(missing_ok=True)
    return out
