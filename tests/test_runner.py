"""The runner under faults: timeouts, out-of-memory, concurrent runners, killed runners, seeds."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from bench.core.environment import usable_cores
from bench.records.record import Record
from bench.records.store import Store
from bench.run.claims import Claims
from bench.run.jobs import Job
from bench.run.runner import RunOptions, run
from bench.run.workers import local_slot, pin_device
from tests._jobs import Probe, TinyNet, fits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def test_methods(monkeypatch):
    """Register the test-only methods for one test."""
    from bench.methods import METHODS
    from bench.methods.base import MethodSpec

    for name, cls in (("probe", Probe), ("tinynet", TinyNet)):
        monkeypatch.setitem(METHODS._items, name,
                            MethodSpec(name=name, cls=cls, defaults={}, summary="test only"))


def records(results: Path, suite: str) -> list[Record]:
    return [Record.from_json(json.loads(p.read_text()))
            for p in sorted((results / "runs" / suite).glob("*.json"))]


def test_timeout_kills_the_job_and_records_it(tmp_path, test_methods):
    stuck = Job.make("to", "probe", "digits", "1", 0, {"sleep": 600})
    killed = Job.make("to", "probe", "digits", "2", 0, {"fail": "kill"})
    report = run([stuck, killed], RunOptions(results_root=tmp_path, timeout=1.5), quiet=True)
    store = Store(tmp_path)
    rec, crash = store.read(stuck), store.read(killed)
    assert rec is not None and crash is not None
    assert rec.status == "failed" and rec.error_kind == "timeout"
    assert "1.5 s time limit" in rec.error and rec.timing_s["total"] >= 1.5
    assert rec.runner["claim"] and rec.versions["torch"] and rec.host
    assert crash.error_kind == "crashed" and "killed by SIGKILL" in crash.error
    assert [r.status for r in report.results] == ["failed", "failed"] and not report.ok
    (pid,) = fits(tmp_path, stuck.id, "started.log")  # the child really began the job...
    assert not psutil.pid_exists(int(pid))  # ... and is gone
    assert not list((tmp_path / "runs" / "to").glob("*.claim"))


def test_a_crashed_worker_is_recorded_and_the_run_goes_on(tmp_path, test_methods):
    """Without --timeout a job that kills its worker process (as the out-of-memory killer would)
    becomes a ``crashed`` record; the jobs loky stopped with it are rerun, the rest run."""
    killed = Job.make("cw", "probe", "digits", "1", 0, {"fail": "kill"})
    others = [Job.make("cw", "probe", "digits", str(t), 0, {"sleep": 0.5}) for t in range(2, 6)]
    report = run([killed, *others], RunOptions(results_root=tmp_path, n_jobs=2), quiet=True)
    store = Store(tmp_path)
    crash = store.read(killed)
    assert crash is not None and crash.status == "failed"
    assert crash.error_kind == "crashed" and "SIGKILL" in crash.error
    assert all(store.status(job) == "ok" for job in others)
    assert sorted(r.id for r in report.results) == sorted(j.id for j in [killed, *others])
    assert [r.id for r in report.failed] == [killed.id] and not report.ok
    assert all(len(fits(tmp_path, job.id)) == 1 for job in others)  # each finished exactly once
    assert not list((tmp_path / "runs" / "cw").glob("*.claim"))


@pytest.mark.parametrize("fail", ["oom", "memory", "alloc"])
def test_out_of_memory_is_recorded_as_such(tmp_path, test_methods, fail):
    job = Job.make("oom", "probe", "digits", "1", 0, {"fail": fail})
    run([job], RunOptions(results_root=tmp_path), quiet=True)
    (rec,) = records(tmp_path, "oom")
    assert rec.status == "failed" and rec.error_kind == "out_of_memory"
    assert not list((tmp_path / "runs" / "oom").glob("*.claim"))  # released on failure too


def test_same_seed_same_scores_on_cpu(tmp_path, test_methods):
    torch.set_num_threads(usable_cores())  # what a fresh worker process uses

    def scores(name: str, seed: int, **options) -> tuple[np.ndarray, dict]:
        root = tmp_path / name
        job = Job.make("det", "tinynet", "digits", "3", seed)
        report = run([job], RunOptions(results_root=root, device="cpu", deterministic=True,
                                       **options), quiet=True)
        assert report.ok, report.results
        rec = Store(root).read(job)
        assert rec is not None and rec.deterministic is True
        return np.load(root / "cache" / job.id / "scores.npy"), rec.metrics

    try:
        a, metrics_a = scores("a", 0)
        torch.rand(7)  # the global generator moves on; seeding must bring it back
        b, metrics_b = scores("b", 0)
        c, _ = scores("c", 1)
        d, _ = scores("d", 0, timeout=300)  # in a fresh process
    finally:
        torch.use_deterministic_algorithms(False)
    np.testing.assert_array_equal(a, b)
    assert metrics_a == metrics_b
    np.testing.assert_array_equal(a, d)
    assert not np.array_equal(a, c)


def script(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests._jobs", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True, **kw)


def test_two_concurrent_runners_record_each_job_once(tmp_path):
    results, barrier = tmp_path / "results", tmp_path / "barrier"
    barrier.mkdir()
    tasks = [str(t) for t in range(10)]
    procs = [script(str(results), *tasks, "--sleep", "0.3", "--barrier", str(barrier))
             for _ in range(2)]
    deadline = time.time() + 300
    while len(list(barrier.glob("ready.*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    (barrier / "go").touch()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    recs = records(results, "t")
    assert sorted(r.job.task for r in recs) == sorted(tasks)
    assert all(r.status == "ok" for r in recs)
    pids = {p.pid for p in procs}
    for rec in recs:  # every job began once and finished once, in one of the two runners
        assert fits(results, rec.id, "started.log") == fits(results, rec.id)
        (pid,) = fits(results, rec.id)
        assert int(pid) == rec.host["pid"] and rec.host["pid"] in pids
    assert {r.host["pid"] for r in recs} == pids  # both runners did work
    ran = [int(o.split("ran=")[1].split()[0]) for o in outs]
    assert sum(ran) == 10
    assert not list((results / "runs" / "t").glob("*.claim"))
    assert not list((results / "runs" / "t").glob(".*"))


def test_killed_runner_takes_its_job_process_along(tmp_path):
    """A runner killed with SIGKILL leaves no orphan job process behind to write a record."""
    results = tmp_path / "results"
    runner = script(str(results), "1", "--sleep", "600", "--timeout", "900")
    job = Job.make("t", "probe", "digits", "1", 0, {"sleep": 600.0})
    deadline = time.time() + 300
    while not fits(results, job.id, "started.log") and time.time() < deadline:
        time.sleep(0.1)
    (child,) = map(int, fits(results, job.id, "started.log"))
    assert child != runner.pid
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.time() + 30
    while psutil.pid_exists(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    store = Store(results)
    assert store.read(job) is None
    claim = Claims(store).claim(job)  # the dead runner's claim is taken over at once
    assert claim is not None
    Claims(store).release(claim)


def test_heartbeat_keeps_a_long_job_claimed(tmp_path):
    from bench.run.dispatch import _Heartbeat

    store, job = Store(tmp_path), Job.make("hb", "ocsvm", "digits", "1", 0)
    claim = Claims(store).claim(job)
    assert claim is not None
    other = Store(tmp_path)  # another runner on another host judges by age only
    with _Heartbeat(Claims(store), claim, claim_timeout=0.4):
        time.sleep(1.0)  # more than twice the claim timeout
        info = json.loads(Claims(store).path(job).read_text())
        age = time.time() - Claims(store).path(job).stat().st_mtime
        assert age < 0.4 and info["token"] == claim.token
    time.sleep(0.5)
    assert Claims(other).listing("hb", timeout=0.4)[0]["stale"]  # no heartbeat: it times out
    Claims(store).release(claim)


def test_pin_device_round_robin(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert [pin_device("auto", s) for s in range(5)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert pin_device("cuda", 4) == "cuda:1"
    assert pin_device("cuda:2", 0) == "cuda:2" and pin_device("cpu", 1) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pin_device("auto", 3) == "cpu"


def test_local_slots_are_distinct_per_run():
    import threading

    class Counter:
        value = 0

    lock = threading.Lock()
    assert local_slot("run1", Counter, lock) == 0
    assert local_slot("run1", Counter, lock) == 0  # one slot per worker and run
    assert local_slot("run2", Counter, lock) == 1


def test_status_shows_running_jobs_and_an_eta(cli, results):
    from tests.conftest import invoke

    res = invoke(cli, results, "run", "--suite", "demo", "--method", "ocsvm", "--dataset",
                 "digits", "--task", "1")
    assert res.exit_code == 0, res.output
    busy = Job.make("demo", "ocsvm", "digits", "2", 0)
    claim = Claims(Store(results)).claim(busy, info={"worker": "loky-3"})
    assert claim is not None
    out = invoke(cli, results, "status", "--suite", "demo", "--workers", "2").output
    row = next(line for line in out.splitlines() if line.strip("│┃ ").startswith("demo"))
    cells = [c.strip() for c in row.strip("│┃").split("│")]
    from bench.run.select import select_jobs

    n = len(select_jobs("demo", check_data=False)[1])
    # jobs, done, stale, failed, running, pending
    assert cells[1:7] == [str(n), "1", "0", "0", "1", str(n - 2)]
    # an ETA (its size depends on how fast the recorded job ran, so on the machine's load)
    assert re.fullmatch(r"\d+(\.\d)? (s|min|h)", cells[8]) and "/ 2 worker(s)" in out
    assert "ocsvm digits/2 s0" in out and "loky-3" in out
    Claims(Store(results)).release(claim)


@pytest.mark.gpu
def test_gpu_records_out_of_memory_and_determinism(tmp_path, test_methods):
    """On CUDA: real OOM is recorded as such and the worker recovers; seeds fix the scores."""
    jobs = [Job.make("gpu", "probe", "digits", "1", 0, {"fail": "alloc"}),
            Job.make("gpu", "tinynet", "digits", "1", 0)]
    opts = RunOptions(results_root=tmp_path / "a", device="cuda", deterministic=True)
    try:
        run(jobs, opts, quiet=True)
        run(jobs[1:], RunOptions(results_root=tmp_path / "b", device="cuda",
                                 deterministic=True), quiet=True)
    finally:
        torch.use_deterministic_algorithms(False)
    oom, net = (Store(tmp_path / "a").read(j) for j in jobs)
    assert oom is not None and net is not None
    assert oom.error_kind == "out_of_memory" and "OutOfMemoryError" in (oom.error or "")
    assert net.status == "ok" and net.host["device"].startswith("cuda")
    assert net.host["cuda"] and net.host["cudnn"] and (net.peak_gpu_mb or 0) > 0
    assert net.host["device_name"] == torch.cuda.get_device_name(0)
    a, b = (Store(tmp_path / r).read_artifacts("gpu", jobs[1].id) for r in "ab")
    assert a is not None and b is not None
    np.testing.assert_array_equal(a.scores, b.scores)


def test_device_names_are_checked_here_unless_the_workers_are_remote(monkeypatch):
    from bench.core.environment import resolve_device
    from bench.core.errors import UsageError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="CUDA is not available here"):
        resolve_device("cuda:1")
    assert str(resolve_device("cuda:1", check_here=False)) == "cuda:1"
    with pytest.raises(UsageError, match="unsupported device"):
        resolve_device("mps", check_here=False)
