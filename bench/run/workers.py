"""Where a job runs: worker slot, pinned GPU, thread count, and the registrations it needs.

Every worker process gets a *slot*, its rank among the workers of its host, and

- pins ``cuda:{slot % n_gpus}`` when the device is ``auto`` or ``cuda`` and several GPUs are
  visible (``cuda:K`` and ``cpu`` are taken as given; a worker that sees one GPU, because its
  launcher set ``CUDA_VISIBLE_DEVICES``, uses that one);
- sets torch's intra-op threads and the BLAS/OpenMP pools (threadpoolctl) to
  ``usable cores // workers on the host``, so that N workers do not oversubscribe the cores;
  under ``--deterministic`` to :data:`DETERMINISTIC_THREADS` whatever the machine, since the
  thread count changes how floating-point sums are split, and so the scores (the record's
  ``threads`` says which).

Locally (joblib/loky) the slot comes from a counter held by the runner's ``multiprocessing``
manager. Under Dask it is the worker's rank among the workers of its host, asked of the
scheduler for every job (workers of an adaptive cluster come and go). The cores are shared among
the LocalCluster's workers when the runner made it; on an existing cluster, a worker confined to
part of the machine (a Slurm/PBS allocation, ``taskset``) shares its cores only among its own
threads, and an unconfined worker shares the machine with every worker thread of its host.

Methods and datasets registered at run time (a user's own method in a script, a test's) exist in
the runner's process only; :func:`registrations` ships them with the job and :func:`adopt` adds
the missing ones in the worker. Plugins (entry points, ``package.module:Class`` names) are found
by the worker itself, in the same registries; a worker started before a plugin was installed
(loky reuses its workers) gets it, and its origin, the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle
import torch
from threadpoolctl import threadpool_limits

from bench.core.environment import usable_cores
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.run.jobs import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where one job runs: worker slot and name, threads, and the backend that placed it."""

    slot: int = 0
    threads: int = 1
    worker: str = "main"
    backend: str = "local"
    #: the Dask scheduler's id (claims made under it can be checked against its live workers)
    scheduler: str = ""

    def as_record(self) -> dict[str, Any]:
        out = {"backend": self.backend, "worker": self.worker, "slot": self.slot}
        return {**out, "scheduler": self.scheduler} if self.scheduler else out

    def holder_gone(self, claim: dict[str, Any]) -> bool:
        """Whether a claim was made by a worker that our Dask scheduler no longer has.

        A worker lost with its node leaves a fresh claim that only times out later, while the
        scheduler has already given its job to another worker: that worker takes the job over.
        """
        if not self.scheduler or claim.get("scheduler") != self.scheduler:
            return False
        workers = _dask_workers()
        return workers is not None and claim.get("worker") not in workers


#: torch/BLAS threads of every worker in deterministic mode: scores then do not depend on the
#: machine's core count (the ``ci`` baseline was made this way)
DETERMINISTIC_THREADS = 1


def threads_per_worker(n_workers: int, deterministic: bool = False) -> int:
    """Threads for each of ``n_workers`` workers on this host: a share of the usable cores,
    or :data:`DETERMINISTIC_THREADS` in deterministic mode."""
    if deterministic:
        return DETERMINISTIC_THREADS
    return max(1, usable_cores() // max(1, n_workers))


def pin_threads(n: int) -> None:
    """Limit torch and the BLAS/OpenMP libraries (NumPy, scikit-learn) to ``n`` threads."""
    torch.set_num_threads(n)
    threadpool_limits(limits=n)


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """:func:`pin_threads` for a block of this process, restored afterwards (the runner's own
    process, running jobs in place under ``--deterministic``)."""
    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=n):
            torch.set_num_threads(n)
            yield
    finally:
        torch.set_num_threads(before)


def pin_device(requested: str, slot: int) -> str:
    """The device for a worker: round-robin over visible GPUs for ``auto`` and ``cuda``."""
    if requested not in ("auto", "cuda") or not torch.cuda.is_available():
        return "cpu" if requested == "auto" else requested
    return f"cuda:{slot % max(1, torch.cuda.device_count())}"


# ------------------------------------------------------------------ slots
_LOCAL_SLOT: dict[str, int] = {}


def local_slot(run_id: str, counter: Any, lock: Any) -> int:
    """This loky worker's slot for run ``run_id``, drawn once from the manager's counter."""
    if run_id not in _LOCAL_SLOT:
        with lock:
            _LOCAL_SLOT.clear()
            _LOCAL_SLOT[run_id] = int(counter.value)
            counter.value = counter.value + 1
    return _LOCAL_SLOT[run_id]


def _host(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    rest = address.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def dask_placement(threads: int | None = None, deterministic: bool = False) -> Placement:
    """Slot and threads of the Dask worker running the calling task.

    Args:
        threads: the thread count when the runner knows it (its own LocalCluster).
    """
    from distributed import get_client, get_worker  # optional dependency

    me = get_worker()
    info: dict[str, Any]
    try:
        info = dict(get_client().scheduler_info())
    except Exception:  # a scheduler hiccup must not fail the job: assume we are alone
        log.debug("could not ask the scheduler for its workers", exc_info=True)
        info = {}
    workers = info.get("workers", {})
    host = _host(me.address)
    mine = sorted(a for a in workers if _host(a) == host) or [me.address]
    slot = mine.index(me.address) if me.address in mine else 0
    if threads is None and deterministic:
        threads = DETERMINISTIC_THREADS
    if threads is None:
        confined = usable_cores() < (os.cpu_count() or 1)
        busy = sum(int(workers[a].get("nthreads", 1)) for a in mine if a in workers)
        sharing = me.state.nthreads if confined else (busy or me.state.nthreads)
        threads = max(1, usable_cores() // max(1, sharing))
    return Placement(slot=slot, threads=threads, worker=str(me.address), backend="dask",
                     scheduler=str(info.get("id", "")))


def _dask_workers() -> set[str] | None:
    """Addresses of the workers the scheduler has now (None if it cannot be asked)."""
    from distributed import get_client  # optional dependency

    try:
        return set(get_client().scheduler_info().get("workers", {}))
    except Exception:
        log.debug("could not ask the scheduler for its workers", exc_info=True)
        return None


# ------------------------------------------------------------------ registrations
def registrations(job: Job) -> dict[str, Any]:
    """What a fresh process needs to build the job's method and dataset: each object pickled
    (cloudpickle: code defined in a script travels by value) with its name and plugin origin,
    and this process's import path (``package.module:Class`` names and plugins installed in a
    folder added to the path at run time import there too)."""
    out: dict[str, Any] = {"sys_path": list(sys.path)}
    for kind, registry, name in (("method", METHODS, job.method),
                                 ("dataset", DATASETS, job.dataset)):
        out[kind] = (name, cloudpickle.dumps(registry.get(name)), registry.origin(name))
    return out


def adopt(regs: dict[str, Any]) -> None:
    """Make the runner's registrations available here: its import path (folders this process
    lacks are appended), then the method and dataset this process does not find itself
    (built in, an installed plugin, an import name), with their origin."""
    for folder in regs.get("sys_path", ()):
        if folder not in sys.path:
            sys.path.append(folder)
    for kind, registry in (("method", METHODS), ("dataset", DATASETS)):
        if kind in regs:
            name, blob, origin = regs[kind]
            if name not in registry:
                registry.add(name, cloudpickle.loads(blob), origin)
