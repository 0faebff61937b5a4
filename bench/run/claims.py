"""Claims: how several runners (processes, or workers on several machines over a shared
filesystem) agree that each job runs once.

Before a job runs it is claimed: ``<job_id>.claim`` is created exclusively next to the job's
record (``results/runs/<suite>/``), refreshed while the job runs, removed when it ends. Another
runner skips claimed jobs; a claim whose holder is gone is taken over (see :meth:`Claims.claim`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.records.files import FILE_MODE
from bench.records.key import Job
from bench.records.store import Store

CLAIM_SUFFIX = ".claim"
#: seconds without a refresh after which a claim is taken over (``bench run --claim-timeout``)
DEFAULT_CLAIM_TIMEOUT = 600.0
log = logging.getLogger(__name__)


class Claims:
    """The claims of the jobs whose records ``store`` holds."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def path(self, job: Job) -> Path:
        return self.store.suite_dir(job.suite) / f"{job.id}{CLAIM_SUFFIX}"

    def claim(self, job: Job, *, timeout: float = DEFAULT_CLAIM_TIMEOUT,
              info: Mapping[str, Any] | None = None,
              gone: Callable[[dict[str, Any]], bool] | None = None) -> Claim | None:
        """Claim ``job`` for this process before running it; None if a live runner holds it.

        The claim file is created with ``O_CREAT | O_EXCL``, so of several runners exactly one
        wins, on one machine or on a shared filesystem whose exclusive create is atomic (local
        disks, NFSv3 and later, Lustre, GPFS). A claim is stale, and taken over, when its file
        was not refreshed for ``timeout`` seconds, or when it was made on this host by a process
        that no longer exists (a runner killed with SIGKILL), or when ``gone(content)`` says its
        holder is dead (a Dask worker its scheduler has lost).
        """
        path = self.path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        body = {**(info or {}), "job_id": job.id, "token": uuid.uuid4().hex, "host": _HOST,
                "pid": pid, "pid_started": _started(pid), "claimed": time.time()}
        for _ in range(8):  # each round wins, finds a live holder, or breaks a stale claim
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            except FileExistsError:
                held = _Held.inspect(path, timeout)
                if held is None:
                    continue  # released meanwhile
                if not held.stale and not (gone is not None and held.info and gone(held.info)):
                    return None
                _break(path, held, timeout)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(body, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            return Claim(path=path, token=body["token"], info=body)
        return None

    def refresh(self, claim: Claim) -> bool:
        """Touch our claim so that it stays live; False if it is no longer ours."""
        if _read_claim(claim.path).get("token") != claim.token:
            return False
        try:
            os.utime(claim.path)
        except FileNotFoundError:
            return False
        return True

    def release(self, claim: Claim) -> None:
        """Remove our claim (and nobody else's)."""
        if _read_claim(claim.path).get("token") == claim.token:
            try:
                claim.path.unlink(missing_ok=True)
            except OSError as exc:  # a folder made read-only: the claim goes stale in time
                log.warning("could not remove claim %s: %s", claim.path, exc)

    def abandoned(self, job: Job) -> bool:
        """Whether ``job`` is claimed by a process of this host that no longer exists (a worker
        that crashed, or was killed, while running it)."""
        held = _Held.inspect(self.path(job), float("inf"))
        return held is not None and bool(held.info) and _dead_here(held.info)

    def listing(self, suite: str, timeout: float = DEFAULT_CLAIM_TIMEOUT) -> list[dict[str, Any]]:
        """Every claim file of ``suite``: its content plus ``age_s`` and ``stale``."""
        out = []
        d = self.store.suite_dir(suite)
        for path in sorted(d.glob(f"*{CLAIM_SUFFIX}")) if d.is_dir() else []:
            held = _Held.inspect(path, timeout)
            if held is not None:
                out.append({**held.info, "job_id": path.name[: -len(CLAIM_SUFFIX)],
                            "age_s": held.age, "stale": held.stale})
        return out


# ---------------------------------------------------------------------- private plumbing
_HOST = socket.gethostname()


@dataclass(frozen=True)
class Claim:
    """A job held by this process; keep it live with ``Claims.refresh``, end it with ``release``."""

    path: Path
    token: str
    info: dict[str, Any]


def _started(pid: int) -> float | None:
    """Start time of a process, to tell a live holder from a new process that reused its pid."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _dead_here(info: Mapping[str, Any]) -> bool:
    """Whether the claim was made on this host by a process that is gone."""
    if info.get("host") != _HOST or not isinstance(info.get("pid"), int):
        return False
    started = _started(info["pid"])
    if started is None:
        return True
    recorded = info.get("pid_started")
    return recorded is not None and abs(started - float(recorded)) > 1.0


def _read_claim(path: Path) -> dict[str, Any]:
    """The claim's content; ``{}`` when absent or not yet fully written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class _Held:
    inode: int
    mtime_ns: int
    info: dict[str, Any]
    age: float
    stale: bool

    @staticmethod
    def inspect(path: Path, timeout: float) -> _Held | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        info = _read_claim(path)
        age = max(0.0, time.time() - st.st_mtime)
        # an unreadable claim is one being written: live until it times out
        stale = age > timeout or (bool(info) and _dead_here(info))
        return _Held(st.st_ino, st.st_mtime_ns, info, age, stale)

    def same_as(self, other: _Held | None) -> bool:
        """The very claim file seen before, not refreshed since (inodes can be reused: the
        content, holding a random token, tells two claims apart)."""
        return (other is not None and other.inode == self.inode
                and other.mtime_ns == self.mtime_ns and other.info == self.info)


def _break(path: Path, held: _Held, timeout: float) -> None:
    """Remove the stale claim ``held``, and never a fresh claim made since it was inspected.

    Breakers serialize on ``<claim>.break``, created exclusively: the one holding it inspects the
    claim again and removes it only if it is still the very file judged stale; the others leave it
    to that one (their next exclusive create finds the job claimed again, by whoever got it). A
    break lock left by a runner killed in that instant is removed once older than ``timeout``.
    """
    lock = path.with_name(path.name + ".break")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > timeout:
                lock.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return
    os.close(fd)
    try:
        if held.same_as(_Held.inspect(path, timeout)):
            path.unlink(missing_ok=True)
            log.info("took over stale claim %s (%s)", path.name, held.info or "unreadable")
    finally:
        lock.unlink(missing_ok=True)
