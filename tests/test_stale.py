"""Stale records: an ok record whose config is not what its job resolves to today is counted by
`bench status` and never silently reused by `bench run`."""

from __future__ import annotations

import json

import pytest

from bench.records.store import Store
from bench.run.select import select_jobs
from bench.run.stale import config_changes, resolved_config, stale_jobs
from tests.conftest import invoke, run_mini_suite


@pytest.fixture
def suite_run(cli, results, tmp_path):
    return run_mini_suite(cli, results, tmp_path, "{ocsvm: {}}")


def _age_one(results) -> dict:
    """Make one record look written under an older preset (another nu)."""
    path = sorted((results / "runs" / "mini").glob("*.json"))[0]
    rec = json.loads(path.read_text())
    rec["config"]["nu"] = rec["config"]["nu"] + 0.25
    path.write_text(json.dumps(rec))
    return rec


def test_fresh_records_are_not_stale(results, suite_run):
    _, jobs = select_jobs(str(suite_run), check_data=False)
    store = Store(results)
    assert stale_jobs(jobs, store) == []
    rec = store.read(jobs[0])
    assert rec is not None and rec.config == resolved_config(jobs[0])


def test_status_shows_and_run_refuses_stale_records(cli, results, suite_run):
    old = _age_one(results)
    status = invoke(cli, results, "status", "--suite", str(suite_run))
    assert status.exit_code == 0, status.output
    assert "1 stale record(s)" in status.output and "--rerun-stale" in status.output
    assert f"nu: {old['config']['nu']}" in status.output
    res = invoke(cli, results, "run", "--suite", str(suite_run), "--all")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error: 1 ok record(s)")
    assert "--rerun-stale" in lines[0]
    again = invoke(cli, results, "run", "--suite", str(suite_run), "--all", "--rerun-stale")
    assert again.exit_code == 0, again.output
    assert "1 run now, 1 already done" in again.output
    _, jobs = select_jobs(str(suite_run), check_data=False)
    assert stale_jobs(jobs, Store(results)) == []


def test_config_changes_name_added_and_removed_fields():
    assert config_changes({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}) == []
    assert config_changes({"a": 1, "gone": True}, {"a": 2, "new": "x"}) == [
        "a: 1 -> 2", 'gone: true -> "(absent)"', 'new: "(absent)" -> "x"']
