"""Stale records: an ``ok`` record whose stored ``config`` is not what its job resolves to today.

A job's id hashes its key (suite, method, overrides, dataset, task, seed), not the config those
resolve to through the method's defaults and the dataset family's preset: a preset or a default
changed in code leaves the id, and so the record, in place. Resume would then mix numbers of two
configs in one table. :func:`stale_records` compares each ok record's ``config`` with
:meth:`MethodSpec.config` today (both as plain JSON); ``bench status`` counts them and
``bench run`` refuses to run a selection that holds any unless ``--rerun-stale`` (which reruns
them). A record whose method or dataset cannot be resolved here (a plugin not installed) is not
judged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.core.config import to_plain
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.records.record import Record
from bench.records.store import Store
from bench.run.jobs import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stale:
    """One stale record: its job and the fields that differ (``field: stored -> today``)."""

    job: Job
    changes: list[str]

    def describe(self) -> str:
        shown = "; ".join(self.changes[:3]) + ("; …" if len(self.changes) > 3 else "")
        return f"{self.job.label()} ({shown})"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(to_plain(value), sort_keys=True, default=str))


def resolved_config(job: Job) -> dict[str, Any] | None:
    """The config ``job`` resolves to today, as a record stores it (None: cannot resolve)."""
    try:
        method = METHODS.get(job.method).build(DATASETS.get(job.dataset).family,
                                               job.overrides_dict)
        return dict(_plain(method.config))  # what run_job stores
    except Exception:  # a plugin not installed here, a config no longer valid: not judged
        log.debug("cannot resolve the config of %s", job.label(), exc_info=True)
        return None


def config_changes(stored: Mapping[str, Any], today: Mapping[str, Any]) -> list[str]:
    """``field: stored -> today`` for every field that differs (added or removed included)."""
    old, new = _plain(dict(stored)), dict(today)
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if a != b:
            out.append(f"{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def stale_records(jobs: Sequence[Job], records: Iterable[Record]) -> list[Stale]:
    """The ok records of ``jobs`` whose config differs from today's resolution."""
    by_id = {r.id: r for r in records if r.ok and r.config is not None}
    out: list[Stale] = []
    for job in jobs:
        rec = by_id.get(job.id)
        if rec is None or rec.config is None:
            continue
        today = resolved_config(job)
        if today is None:
            continue
        changes = config_changes(rec.config, today)
        if changes:
            out.append(Stale(job, changes))
    return out


def stale_jobs(jobs: Sequence[Job], store: Store) -> list[Stale]:
    """:func:`stale_records` for ``jobs``, reading their records from ``store``."""
    records = [r for r in (store.read(j) for j in jobs) if r is not None]
    return stale_records(jobs, records)
