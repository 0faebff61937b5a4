import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.records.record import SCHEMA_VERSION, Record, RecordError
from bench.records.store import ResultsWriteError, Store
from bench.run.jobs import Job


def record(job: Job, status: str = "ok", auroc: float = 0.9) -> Record:
    return Record.from_json(
        {"schema_version": SCHEMA_VERSION, "id": job.id, "job": job.key(), "status": status,
         "metrics": {"image_auroc": auroc, "image_ap": None}, "expert": None,
         "checkpoint_policy": "final"})


def test_write_read_load(tmp_path):
    store = Store(tmp_path)
    j1 = Job.make("s", "ocsvm", "digits", "1", 0)
    j2 = Job.make("s", "ocsvm", "digits", "2", 0, {"nu": 0.5})
    p = store.write(record(j1))
    store.write(record(j2, "failed"))
    assert p == tmp_path / "runs" / "s" / f"{j1.id}.json"
    assert store.read(j1).metrics["image_auroc"] == 0.9
    assert store.status(j2) == "failed"
    df = store.load("s")
    assert set(df["metric"]) == {"image_auroc", "image_ap"}
    assert df.loc[df["task"] == "2", "variant"].iloc[0] == "nu=0.5"
    assert df["value"].isna().sum() == 2  # the None image_ap of both records
    assert list(store.summary()["id"]) == sorted([j1.id, j2.id])


def test_a_record_whose_id_is_not_its_jobs_is_rejected():
    job = Job.make("s", "m", "d", "t", 0)
    data = record(job).to_json()
    data["id"] = "0" * 16
    with pytest.raises(RecordError, match="is not its job's"):
        Record.from_json(data)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    store = Store(tmp_path)
    job = Job.make("s", "m", "d", "t", 0)

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ResultsWriteError, match="disk full"):
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
    from bench.methods import register
    from bench.methods.classic import OneClassSVMDetector
    from bench.run.jobs import Job
    from bench.run.runner import RunOptions, run

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


def test_artifacts_round_trip_small_and_atomic(tmp_path):
    import numpy as np

    from bench.records.artifacts import pick_examples

    store = Store(tmp_path)
    job = Job.make("s", "m", "d", "t", 0)
    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 10)
    scores = rng.normal(size=40) + labels
    maps = rng.random((40, 8, 8)) * 1e6  # beyond float16's range: stored relative to a scale
    masks = (rng.random((40, 8, 8)) > 0.8).astype(np.float32)
    images = rng.integers(0, 256, size=(40, 3, 8, 8), dtype=np.uint8)
    info = store.write_artifacts(job, labels, scores, ids=[f"img{i}" for i in range(40)],
                                 maps=maps, masks=masks, images=images, max_maps=6)
    assert info == {"scores": "scores.npz", "maps": "maps.npz", "n_maps": 6}
    art = store.read_artifacts("s", job.id)
    np.testing.assert_array_equal(art.scores, scores)  # exact: ROC curves match the record
    np.testing.assert_array_equal(art.labels, labels)
    assert art.ids[3] == "img3"
    idx = art.map_index
    assert len(idx) == 6 and (labels[idx] == 1).sum() == 3  # half anomalies, half normals
    np.testing.assert_allclose(art.maps, maps[idx], rtol=1e-3)
    np.testing.assert_array_equal(art.masks, masks[idx])
    np.testing.assert_array_equal(art.images, images[idx])
    folder = store.artifact_dir("s", job.id)
    assert sorted(p.name for p in folder.iterdir()) == ["maps.npz", "scores.npz"]
    assert store.read_artifacts("s", "0" * 16) is None
    assert store.records() == []  # artifact folders are not records
    # the extremes of each class are kept: best and worst detections, not only flattering ones
    pick = pick_examples(labels, scores, 4)
    anomalies = np.flatnonzero(labels == 1)
    assert {anomalies[np.argmax(scores[anomalies])],
            anomalies[np.argmin(scores[anomalies])]} <= set(pick)
    assert len(pick_examples(np.ones(3), np.zeros(3), 8)) == 3


def test_job_saves_scores_and_maps_through_execute(tmp_path, monkeypatch):
    """A localizing method's run leaves artifacts whose ROC reproduces the recorded AUROC."""
    import numpy as np

    from bench.core.metrics import image_auroc
    from bench.methods.base import Scores
    from bench.methods.classic import OneClassSVMDetector
    from bench.run.execute import run_job

    def localizing_score(self, test, ctx):
        x = test.images.numpy().astype(np.float64).mean(axis=1)
        maps = np.abs(x - np.median(x, axis=(1, 2), keepdims=True))
        return Scores(image=maps.reshape(len(x), -1).max(axis=1), maps=maps)

    monkeypatch.setattr(OneClassSVMDetector, "score", localizing_score)
    job = Job.make("e2e", "ocsvm", "textures", "brick", 0)
    out = run_job(job, results_root=tmp_path)
    assert out.status == "ok", out.error
    store = Store(tmp_path)
    rec = store.read(job)
    assert rec.artifacts["n_maps"] == 8 and rec.artifacts["maps"] == "maps.npz"
    art = store.read_artifacts("e2e", job.id)
    assert image_auroc(art.labels, art.scores) == rec.metrics["image_auroc"]
    assert art.images.shape[1:] == (3, *art.maps.shape[1:]) and art.masks is not None
    size = sum(p.stat().st_size for p in store.artifact_dir("e2e", job.id).iterdir())
    assert size < 200_000
