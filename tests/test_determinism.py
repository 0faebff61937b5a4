"""Deterministic runs: a fixed thread count whatever the machine's cores, recorded; the record's
``deterministic`` is true only when no op fell back to a nondeterministic kernel."""

from __future__ import annotations

import warnings

import pytest

from bench.records.store import Store
from bench.run import workers
from bench.run.execute import nondeterminism_watch
from bench.run.jobs import Job
from bench.run.runner import RunOptions, run
from tests._jobs import Probe, TinyNet

FALLBACK = ("scatter_add_ does not have a deterministic implementation, but you set "
            "'torch.use_deterministic_algorithms(True, warn_only=True)'.")


@pytest.fixture
def test_methods(monkeypatch):
    from bench.methods import METHODS
    from bench.methods.base import MethodSpec

    for name, cls in (("probe", Probe), ("tinynet", TinyNet)):
        monkeypatch.setitem(METHODS._items, name,
                            MethodSpec(name=name, cls=cls, defaults={}, summary="test only"))


def test_thread_budget_is_fixed_in_deterministic_mode(monkeypatch):
    monkeypatch.setattr(workers, "usable_cores", lambda: 8)
    assert workers.threads_per_worker(2) == 4
    assert workers.threads_per_worker(2, deterministic=True) == workers.DETERMINISTIC_THREADS


def test_one_job_under_two_thread_budgets_scores_the_same(tmp_path, monkeypatch, test_methods):
    job = Job.make("det", "tinynet", "digits", "3", 0, {"epochs": 2})
    found = []
    for cores in (1, 4):
        monkeypatch.setattr(workers, "usable_cores", lambda c=cores: c)
        root = tmp_path / f"cores{cores}"
        report = run([job], RunOptions(results_root=root, deterministic=True), quiet=True)
        assert report.ok
        rec = Store(root).read(job)
        assert rec is not None and rec.ok
        found.append(rec)
    assert [r.host["threads"] for r in found] == [workers.DETERMINISTIC_THREADS] * 2
    assert found[0].metrics == found[1].metrics
    assert all(r.deterministic and r.deterministic_fallbacks is None for r in found)


def test_a_fallback_makes_the_record_not_deterministic(tmp_path, test_methods):
    job = Job.make("det", "probe", "digits", "1", 0, {"warn": FALLBACK})
    run([job], RunOptions(results_root=tmp_path, deterministic=True), quiet=True)
    rec = Store(tmp_path).read(job)
    assert rec is not None and rec.ok and rec.deterministic is False
    assert rec.deterministic_fallbacks == [FALLBACK]
    assert rec.to_json()["deterministic_fallbacks"] == [FALLBACK]
    plain = Job.make("det", "probe", "digits", "2", 0, {})
    run([plain], RunOptions(results_root=tmp_path, deterministic=True), quiet=True)
    again = Store(tmp_path).read(plain)
    assert again is not None and again.deterministic is True
    assert "deterministic_fallbacks" not in again.to_json()


def test_the_watch_keeps_other_warnings():
    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        with nondeterminism_watch(True) as fallbacks:
            warnings.warn(FALLBACK, UserWarning, stacklevel=1)
            warnings.warn(FALLBACK, UserWarning, stacklevel=1)
            warnings.warn("something else", DeprecationWarning, stacklevel=1)
    assert fallbacks == [FALLBACK]
    assert [str(w.message) for w in outer] == ["something else"]
    with nondeterminism_watch(False) as none:
        pass
    assert none == []
