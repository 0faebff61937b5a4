import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.jobs import Job
from bench.store import SCHEMA_VERSION, Store


def record(job: Job, status: str = "ok", auroc: float = 0.9) -> dict:
    return {"schema_version": SCHEMA_VERSION, "id": job.id, "job": job.key(), "status": status,
            "metrics": {"image_auroc": auroc, "image_ap": None}, "expert": None,
            "checkpoint_policy": "final"}


def test_write_read_load(tmp_path):
    store = Store(tmp_path)
    j1 = Job.make("s", "ocsvm", "digits", "1", 0)
    j2 = Job.make("s", "ocsvm", "digits", "2", 0, {"nu": 0.5})
    p = store.write(record(j1))
    store.write(record(j2, "failed"))
    assert p == tmp_path / "runs" / "s" / f"{j1.id}.json"
    assert store.read(j1)["metrics"]["image_auroc"] == 0.9
    assert store.status(j2) == "failed"
    df = store.load("s")
    assert set(df["metric"]) == {"image_auroc", "image_ap"}
    assert df.loc[df["task"] == "2", "variant"].iloc[0] == "nu=0.5"
    assert df["value"].isna().sum() == 2  # the None image_ap of both records
    assert list(store.summary()["id"]) == sorted([j1.id, j2.id])


def test_write_rejects_mismatched_id(tmp_path):
    job = Job.make("s", "m", "d", "t", 0)
    rec = record(job)
    rec["id"] = "0" * 16
    with pytest.raises(ValueError, match="does not match"):
        Store(tmp_path).write(rec)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    store = Store(tmp_path)
    job = Job.make("s", "m", "d", "t", 0)

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        store.write(record(job))
    assert list((tmp_path / "runs" / "s").iterdir()) == []


def test_unreadable_record_is_ignored(tmp_path):
    store = Store(tmp_path)
    job = Job.make("s", "m", "d", "t", 0)
    path = store.path(job)
    path.parent.mkdir(parents=True)
    path.write_text('{"job": ')  # truncated by hand
    assert store.read(job) is None and store.records() == []


SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from methods import register
    from methods.classic import OneClassSVMDetector
    from bench.jobs import Job
    from bench.runner import RunOptions, run

    class Sleepy(OneClassSVMDetector):
        def fit(self, train, ctx):
            if sys.argv[2] == "sleep" and train.name.startswith("digits/2/"):
                time.sleep(120)
            return super().fit(train, ctx)

    register("sleepy", Sleepy, "test method that stalls on digit 2")
    jobs = [Job.make("kill", "sleepy", "digits", t, 0) for t in ("1", "2", "3")]
    run(jobs, RunOptions(results_root=Path(sys.argv[1])), quiet=True)
""")


def test_killed_runner_leaves_no_partial_record_and_resumes(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(SCRIPT)
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(results), "sleep"], env=env)
    runs = results / "runs" / "kill"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 1:
        time.sleep(0.2)
    time.sleep(1.0)  # job 2 is now stalled inside fit
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = list(runs.glob("*.json"))
    assert len(first) == 1
    assert json.loads(first[0].read_text())["job"]["task"] == "1"
    (left,) = runs.glob("*.claim")  # the killed runner's claim on job 2 stays behind...
    assert json.loads(left.read_text())["pid"] == proc.pid
    mtime = first[0].stat().st_mtime_ns
    subprocess.run([sys.executable, str(script), str(results), "go"], env=env, check=True)
    recs = sorted(json.loads(p.read_text())["job"]["task"] for p in runs.glob("*.json"))
    assert recs == ["1", "2", "3"]  # ... and is taken over at once: its runner is dead
    assert first[0].stat().st_mtime_ns == mtime  # the finished job was not run again
    assert not list(runs.glob("*.tmp")) and not list(runs.glob(".*"))
    assert not list(runs.glob("*.claim"))
