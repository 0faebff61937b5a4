"""One job in a worker: claim it, run it unless another runner did, release the claim.

Every backend (:mod:`bench.run.backends`) calls :func:`dispatch` once per job, in whatever
process the job lands in, and hands the :class:`Outcome` back to the runner.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.metrics import DEFAULT_THRESHOLD_QUANTILE
from bench.records.record import JobSummary
from bench.records.store import Store
from bench.run.claims import DEFAULT_CLAIM_TIMEOUT, Claim, Claims
from bench.run.execute import run_job
from bench.run.isolate import run_isolated
from bench.run.jobs import Job
from bench.run.workers import Placement, pin_device

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class RunOptions:
    results_root: Path
    data_root: Path | None = None
    device: str = "auto"
    n_jobs: int = 1
    deterministic: bool = False
    retry_failed: bool = False
    #: rerun ok jobs whose record's config differs from today's resolution (else refuse)
    rerun_stale: bool = False
    backend: str = "local"
    #: address of an existing Dask scheduler; None starts a LocalCluster of ``n_jobs`` workers
    scheduler: str | None = None
    #: seconds a job may run (in its own process) before it is killed and recorded as failed
    timeout: float | None = None
    claim_timeout: float = DEFAULT_CLAIM_TIMEOUT
    #: q of the F1 at the training scores' q-quantile; None: do not score the training set
    threshold_quantile: float | None = DEFAULT_THRESHOLD_QUANTILE


class NotRun(enum.Enum):
    """Why a dispatched job did not run here."""

    #: another live runner holds its claim
    HELD_ELSEWHERE = "held by another runner"
    #: another runner wrote its record after this run was planned
    FINISHED_ELSEWHERE = "finished by another runner"


@dataclass(frozen=True)
class Outcome:
    """What became of one dispatched job: its summary if it ran here, else why not."""

    job_id: str
    summary: JobSummary | None = None
    not_run: NotRun | None = None

    @staticmethod
    def ran(summary: JobSummary) -> Outcome:
        return Outcome(job_id=summary.id, summary=summary)


class _Heartbeat:
    """Refreshes a claim in a thread while its job runs, so that it never looks stale."""

    def __init__(self, claims: Claims, claim: Claim, claim_timeout: float) -> None:
        self.claims, self.claim = claims, claim
        self.interval = max(0.05, min(30.0, claim_timeout / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.claims.refresh(self.claim):
                log.warning("claim on job %s was taken over while it ran", self.claim.path.stem)
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def dispatch(job: Job, options: RunOptions, placement: Placement, planned: str | None,
             regs: dict[str, Any] | None = None, progress: ProgressFn | None = None,
             isolate: bool = False) -> Outcome:
    """Claim ``job``, run it unless someone else did since ``planned``, release the claim.

    ``planned`` is the store's fingerprint of the job's record when the run was planned (None:
    no record). A different fingerprint now means another runner finished the job meanwhile.
    The job runs in a child process of its own with ``options.timeout`` or ``isolate``.
    """
    store = Store(options.results_root)
    claims = Claims(store)
    claim = claims.claim(job, timeout=options.claim_timeout, info=placement.as_record(),
                         gone=placement.holder_gone)
    if claim is None:
        return Outcome(job_id=job.id, not_run=NotRun.HELD_ELSEWHERE)
    try:
        if store.fingerprint(job) != planned:
            return Outcome(job_id=job.id, not_run=NotRun.FINISHED_ELSEWHERE)
        kwargs: dict[str, Any] = {
            "results_root": options.results_root, "data_root": options.data_root,
            "device": pin_device(options.device, placement.slot),
            "deterministic": options.deterministic,
            "threshold_quantile": options.threshold_quantile,
            "runner": {**placement.as_record(), "claim": claim.token}}
        with _Heartbeat(claims, claim, options.claim_timeout):
            if options.timeout is not None or isolate:
                return Outcome.ran(run_isolated(
                    job, timeout=options.timeout, threads=placement.threads, run_kwargs=kwargs,
                    registrations=regs, progress=progress))
            return Outcome.ran(run_job(job, progress=progress, **kwargs))
    finally:
        claims.release(claim)
