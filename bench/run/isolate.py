"""Run one job in a child process that can be killed: ``bench run --timeout``.

A thread cannot stop torch compute, so a job with a time limit runs in a fresh Python process
(``subprocess``, which works inside loky and Dask workers, whose daemonic processes may not have
``multiprocessing`` children). The worker that started it:

- sends the job through the child's stdin (cloudpickle, so that methods registered at run time
  travel along) and keeps stdin open: the child exits as soon as it reads EOF, so a worker
  killed even with SIGKILL never leaves an orphan job behind to write a record later;
- reads the child's progress and its final summary from a pipe;
- starts the clock when the child says it is ready (interpreter start-up and imports are not
  the job's time), and at the limit kills the child's whole process group (DataLoader workers
  included) and writes a failed record with ``error_kind`` ``timeout``;
- turns a child that dies another way (a segfault, the kernel's out-of-memory killer) into a
  failed record with ``error_kind`` ``crashed`` and the tail of the child's output.

The child writes its own record, exactly as an in-process job does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import cloudpickle

import bench
from bench.records.record import ErrorKind, JobSummary
from bench.run.execute import run_job, write_failure
from bench.run.workers import adopt, pin_threads

log = logging.getLogger(__name__)

#: seconds a child may take to start (imports) before it counts as crashed
STARTUP_LIMIT_S = 300.0
_HEADER = 8
_EXIT_GRACE_S = 30.0


def run_isolated(job: Any, *, timeout: float | None, threads: int, run_kwargs: dict[str, Any],
                 registrations: dict[str, Any] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> JobSummary:
    """Run ``run_job(job, **run_kwargs)`` in a child process; kill it after ``timeout`` s.

    Returns the job's summary, from the child or from the failed record written here.
    """
    inner = cloudpickle.dumps({"job": job, "kwargs": run_kwargs, "threads": threads,
                               "registrations": registrations or {}})
    payload = pickle.dumps((list(sys.path), inner))
    with tempfile.TemporaryFile() as output:
        result, elapsed, ending, code = _supervise(payload, output, timeout, progress)
        tail = _tail(output)
    if result is not None:
        if tail.strip():
            log.debug("output of job %s:\n%s", job.id, tail)
        return JobSummary(**result)
    kind: ErrorKind
    if ending == "timeout":
        error, kind = f"TimeoutError: exceeded the {timeout:g} s time limit; killed", "timeout"
    elif ending == "startup":
        error = f"Crashed: the job's process did not start within {STARTUP_LIMIT_S:g} s"
        kind = "crashed"
    else:
        error, kind = f"Crashed: {_describe_exit(code)}", "crashed"
    return write_failure(job, error=error, kind=kind, total_s=elapsed, detail=tail,
                         **{k: run_kwargs[k] for k in ("results_root", "device", "deterministic",
                                                       "runner") if k in run_kwargs})


def _supervise(payload: bytes, output: IO[bytes], timeout: float | None,
               progress: Callable[[int, int], None] | None
               ) -> tuple[dict[str, Any] | None, float, str, int | None]:
    """Start the child, feed it, follow it: (summary, job seconds, how it ended, exit code)."""
    root = str(Path(bench.__file__).resolve().parent.parent)
    read_fd, write_fd = os.pipe()
    boot = "import sys; sys.path.insert(0, sys.argv[1]); import bench.run.isolate as m; m.main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", boot, root, str(write_fd)], stdin=subprocess.PIPE,
        stdout=output, stderr=output, pass_fds=(write_fd,), start_new_session=True)
    os.close(write_fd)
    messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
    reader = threading.Thread(target=_read_messages, args=(read_fd, messages), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        assert proc.stdin is not None
        proc.stdin.write(len(payload).to_bytes(_HEADER, "big") + payload)
        proc.stdin.flush()
        result, ready_at, ending = _follow(messages, started, timeout, progress)
        if ending != "exited":
            _kill(proc)
        proc.wait()
    except BaseException:
        _kill(proc)
        raise
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        reader.join(timeout=5)
    return result, time.monotonic() - (ready_at or started), ending, proc.returncode


def _follow(messages: queue.Queue[dict[str, Any] | None], started: float,
            timeout: float | None, progress: Callable[[int, int], None] | None
            ) -> tuple[dict[str, Any] | None, float | None, str]:
    """Relay the child's messages until it ends: (summary, time it was ready, how it ended).

    How it ended: ``exited``, ``timeout`` (the job ran past its limit) or ``startup`` (the child
    never said it was ready).
    """
    ready_at: float | None = None
    result = None
    result_at = float("inf")
    while True:
        if ready_at is None:
            deadline = started + STARTUP_LIMIT_S
        else:
            deadline = ready_at + timeout if timeout is not None else float("inf")
        deadline = min(deadline, result_at + _EXIT_GRACE_S)  # done: it only has to exit
        wait = deadline - time.monotonic()
        if wait <= 0:
            return result, ready_at, "startup" if ready_at is None else "timeout"
        try:
            msg = messages.get(timeout=min(wait, 3600.0))
        except queue.Empty:
            continue
        if msg is None:  # the child closed its end: it has exited
            return result, ready_at, "exited"
        if "ready" in msg:
            ready_at = time.monotonic()
        elif "progress" in msg and progress is not None:
            progress(*msg["progress"])
        elif "result" in msg:
            result, result_at = msg["result"], time.monotonic()


def _read_messages(fd: int, messages: queue.Queue[dict[str, Any] | None]) -> None:
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        for line in fh:
            try:
                messages.put(json.loads(line))
            except ValueError:
                log.warning("unreadable message from a job process: %r", line[:200])
    messages.put(None)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = (" (if nobody killed it, most likely the kernel's out-of-memory killer)"
                if -code == signal.SIGKILL else "")
        return f"the job's process was killed by {name}{hint}"
    return f"the job's process exited with code {code} without a result"


def _tail(fh: IO[bytes], limit: int = 4000) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - limit))
    return fh.read().decode("utf-8", errors="replace")


# ---------------------------------------------------------------------- the child
def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError("the runner went away before sending the job")
        data += chunk
    return data


def _exit_on_eof(stream: IO[bytes]) -> None:
    """Block until the parent closes our stdin (it ended, or was killed), then stop at once."""
    stream.read()
    os._exit(3)


def main() -> None:
    """Child entry point: read the job from stdin, run it, report through the pipe fd."""
    out = os.fdopen(int(sys.argv[2]), "w", encoding="utf-8", buffering=1)
    lock = threading.Lock()

    def send(msg: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(msg) + "\n")

    stdin = sys.stdin.buffer
    size = int.from_bytes(_read_exact(stdin, _HEADER), "big")
    sys_path, inner = pickle.loads(_read_exact(stdin, size))
    sys.path[:0] = [p for p in sys_path if p not in sys.path]
    threading.Thread(target=_exit_on_eof, args=(stdin,), daemon=True).start()
    spec = pickle.loads(inner)

    pin_threads(spec["threads"])
    adopt(spec["registrations"])
    send({"ready": True})
    result = run_job(spec["job"], progress=lambda d, t: send({"progress": [d, t]}),
                     **spec["kwargs"])
    send({"result": dataclasses.asdict(result)})
    out.close()
