"""The Dask backend on a real ``distributed`` cluster over loopback."""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest

from bench.core.environment import usable_cores
from bench.core.errors import UsageError
from bench.records.store import Store
from bench.run.claims import Claims
from bench.run.jobs import Job
from bench.run.runner import RunOptions, run
from tests._jobs import fits
from tests.conftest import invoke

pytest.importorskip("distributed")


def test_local_cluster_with_two_workers_runs_a_suite(cli, results):
    res = invoke(cli, results, "run", "--suite", "demo", "--dataset", "digits", "--task", "1",
                 "--task", "2", "--method", "ocsvm", "--method", "kde", "--backend", "dask",
                 "--jobs", "2")
    assert res.exit_code == 0, res.output
    assert "4 run now" in res.output
    recs = Store(results).records("demo")
    assert len(recs) == 4 and all(r.status == "ok" for r in recs)
    assert {r.job.method for r in recs} == {"ocsvm", "kde"}
    for r in recs:
        assert r.runner["backend"] == "dask"
        assert r.runner["worker"].startswith("tcp://127.0.0.1:")
        assert r.runner["slot"] in (0, 1) and r.runner["claim"]
        assert r.host["threads"] == max(1, usable_cores() // 2)  # two workers share the cores
    assert len({r.runner["worker"] for r in recs}) <= 2
    assert not list((results / "runs" / "demo").glob("*.claim"))
    status = invoke(cli, results, "status", "--suite", "demo")
    assert status.exit_code == 0 and "demo" in status.output


def _listening_ports() -> set[int]:
    import psutil

    return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


def test_local_cluster_opens_no_dashboard_on_port_8787():
    """The scheduler always serves HTTP (health, metrics); a LocalCluster of a run puts it on a
    free loopback port, never on the dashboard's 8787, and serves no dashboard there."""
    from bench.run.backends.dask import dask_client

    with dask_client(None, 1) as client:
        ports = _listening_ports()
        server = client.cluster.scheduler.http_server
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/health", timeout=10) as resp:
            assert resp.read() == b"ok"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{base}/status", timeout=10)
    assert 8787 not in ports and server.port != 8787 and server.address == "127.0.0.1"


def test_existing_scheduler_and_timeout_inside_dask_workers(tmp_path):
    """``--scheduler``: jobs go to a running cluster; job subprocesses start in its workers.

    The job was claimed by a worker of that cluster on another host, which the scheduler lost:
    its fresh claim is taken over at once.
    """
    from distributed import Client

    from bench.run.backends.dask import local_cluster

    job = Job.make("dk", "kde", "digits", "4", 0)
    with local_cluster(1) as cluster:
        with Client(cluster) as client:
            scheduler_id = client.scheduler_info()["id"]
        claim = Claims(Store(tmp_path)).path(job)
        claim.parent.mkdir(parents=True)
        claim.write_text(json.dumps({"host": "elsewhere", "pid": 1, "backend": "dask",
                                     "worker": "tcp://10.9.9.9:1", "scheduler": scheduler_id}))
        report = run([job], RunOptions(results_root=tmp_path, backend="dask",
                                       scheduler=cluster.scheduler_address, timeout=300),
                     quiet=True)
        workers = set(cluster.scheduler_info["workers"])
    assert report.ok and len(report.results) == 1
    rec = Store(tmp_path).read(job)
    assert rec is not None
    assert rec.status == "ok" and rec.runner["backend"] == "dask"
    assert rec.runner["worker"] in workers
    assert rec.host["threads"] == usable_cores()  # the only worker thread of its host
    assert rec.runner["scheduler"] == scheduler_id and not claim.exists()
    assert rec.host["pid"] not in {os.getpid()}  # ran in a job process, not here


def test_missing_dask_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    job = Job.make("dk", "kde", "digits", "4", 0)
    with pytest.raises(UsageError, match=r"pip install 'bench-mkd\[dist\]'"):
        run([job], RunOptions(results_root=tmp_path, backend="dask"), quiet=True)


def test_scheduler_needs_the_dask_backend(cli, results):
    res = invoke(cli, results, "run", "--suite", "demo", "--all", "--scheduler", "tcp://x:1")
    assert res.exit_code == 2 and "--scheduler needs --backend dask" in res.output


def test_a_job_that_kills_its_worker_each_time_is_recorded_as_crashed(tmp_path, monkeypatch):
    """Without --timeout, a job that takes its Dask worker down each time the scheduler tries it
    becomes a ``crashed`` record; the other jobs run."""
    import dask

    from bench.methods import METHODS
    from bench.methods.base import MethodSpec
    from tests._jobs import Probe

    monkeypatch.setitem(METHODS._items, "probe",
                        MethodSpec(name="probe", cls=Probe, defaults={}, summary="test only"))
    fine = Job.make("dkill", "kde", "digits", "1", 0)
    killed = Job.make("dkill", "probe", "digits", "2", 0, {"fail": "kill"})
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        report = run([killed, fine], RunOptions(results_root=tmp_path, backend="dask", n_jobs=2),
                     quiet=True)
    store = Store(tmp_path)
    crash = store.read(killed)
    assert crash is not None and crash.status == "failed" and crash.error_kind == "crashed"
    assert "Dask worker died" in crash.error and crash.runner["backend"] == "dask"
    assert store.status(fine) == "ok"
    assert [r.id for r in report.failed] == [killed.id] and len(report.results) == 2
    assert len(fits(tmp_path, killed.id, "started.log")) == 2  # tried twice, on two workers
    assert not list((tmp_path / "runs" / "dkill").glob("*.claim"))
