"""Claims in the store: exclusive, released by their owner only, taken over when stale."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from bench.records.record import SCHEMA_VERSION, Record
from bench.records.store import Store
from bench.run.claims import Claims
from bench.run.jobs import Job
from bench.run.status import suite_progress

JOB = Job.make("s", "ocsvm", "digits", "1", 0)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def fake_claim(store: Store, job: Job, *, age: float = 0.0, **info) -> None:
    path = Claims(store).path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": "x" * 32, "claimed": time.time() - age, **info}))
    if age:
        os.utime(path, (time.time() - age, time.time() - age))


def test_claim_is_exclusive_and_released_by_its_owner(tmp_path):
    store = Store(tmp_path)
    first = Claims(store).claim(JOB, info={"worker": "w0"})
    assert first is not None and first.info["worker"] == "w0"
    held = json.loads(Claims(store).path(JOB).read_text())
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert Claims(store).claim(JOB) is None  # held by a live process: this one
    assert Claims(store).refresh(first)
    Claims(store).release(first)
    assert not Claims(store).path(JOB).exists()
    second = Claims(store).claim(JOB)
    assert second is not None
    Claims(store).release(first)  # a stale handle never removes someone else's claim
    assert Claims(store).path(JOB).exists() and not Claims(store).refresh(first)
    Claims(store).release(second)


@pytest.mark.parametrize("how", ["dead_pid", "timed_out", "reused_pid"])
def test_stale_claims_are_taken_over(tmp_path, how):
    store = Store(tmp_path)
    here = socket.gethostname()
    if how == "dead_pid":
        fake_claim(store, JOB, host=here, pid=dead_pid())
    elif how == "timed_out":  # a live process on another machine that stopped refreshing
        fake_claim(store, JOB, host="elsewhere", pid=1, age=120)
    else:  # our pid, but started at another time: the holder died and the pid was reused
        fake_claim(store, JOB, host=here, pid=os.getpid(), pid_started=1.0)
    claim = Claims(store).claim(JOB, timeout=60)
    assert claim is not None
    assert json.loads(Claims(store).path(JOB).read_text())["token"] == claim.token
    assert not list(store.suite_dir("s").glob(".*"))  # no leftovers of the takeover


@pytest.mark.parametrize("info", [{"host": "elsewhere", "pid": 1}, {}])
def test_fresh_claims_of_others_are_respected(tmp_path, info):
    store = Store(tmp_path)
    fake_claim(store, JOB, **info)
    if not info:  # a claim still being written: unreadable
        Claims(store).path(JOB).write_text("")
    os.utime(Claims(store).path(JOB), (time.time() - 5, time.time() - 5))
    assert Claims(store).claim(JOB, timeout=60) is None
    assert Claims(store).claim(JOB, timeout=1) is not None  # ... until it is older than the timeout


def test_racing_takeovers_of_a_stale_claim_have_one_winner(tmp_path):
    store = Store(tmp_path)
    for _ in range(20):
        fake_claim(store, JOB, host=socket.gethostname(), pid=dead_pid())
        won: list = []
        barrier = threading.Barrier(8)

        def grab(won: list = won, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            claim = Claims(store).claim(JOB, timeout=60)
            if claim is not None:
                won.append(claim)

        threads = [threading.Thread(target=grab) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1
        assert json.loads(Claims(store).path(JOB).read_text())["token"] == won[0].token
        Claims(store).release(won[0])


def record(job: Job, status: str, total: float) -> Record:
    return Record.from_json({"schema_version": SCHEMA_VERSION, "id": job.id, "job": job.key(),
                             "status": status, "timing_s": {"total": total}})


def test_progress_counts_and_eta(tmp_path):
    store = Store(tmp_path)
    jobs = [Job.make("s", m, "digits", str(t), 0) for m in ("ocsvm", "kde") for t in range(4)]
    ocsvm, kde = jobs[:4], jobs[4:]
    store.write(record(ocsvm[0], "ok", 10.0))
    store.write(record(ocsvm[1], "ok", 30.0))
    store.write(record(kde[0], "ok", 100.0))
    store.write(record(kde[1], "failed", 1.0))
    claim = Claims(store).claim(ocsvm[2])
    assert claim is not None
    fake_claim(store, kde[2], host="elsewhere", pid=1, age=7200)  # a dead claim: pending
    now = claim.info["claimed"] + 5.0
    p = suite_progress(store, "s", jobs, now=now)
    assert (p.done, p.failed, p.running, p.pending) == (3, 1, 1, 3)
    # pending: ocsvm 3 (median 20 s), kde 2 and 3 (100 s each); running: ocsvm 2, 20 - 5 s left
    assert p.workers == 1 and p.eta_s == pytest.approx(20 + 200 + 15)
    assert p.recorded_s == pytest.approx(141.0)
    assert [c["label"] for c in p.live] == [ocsvm[2].label()]
    assert suite_progress(store, "s", jobs, workers=5, now=now).eta_s == pytest.approx(235 / 5)
    Claims(store).release(claim)
    assert suite_progress(Store(tmp_path / "empty"), "s", jobs).eta_s is None


def test_a_holder_known_to_be_gone_loses_its_fresh_claim(tmp_path):
    store = Store(tmp_path)
    fake_claim(store, JOB, host="elsewhere", pid=1, worker="tcp://10.0.0.9:1")
    assert Claims(store).claim(JOB, gone=lambda info: info["worker"] == "tcp://10.0.0.2:1") is None
    claim = Claims(store).claim(JOB, gone=lambda info: info["worker"] == "tcp://10.0.0.9:1")
    assert claim is not None
