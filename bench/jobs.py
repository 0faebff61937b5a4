"""Jobs are keys, not objects: small frozen dataclasses with an id stable across machines.

A job names (suite, method, overrides, dataset, task, seed). Workers build everything from it,
so jobs pickle cheaply and run anywhere. ``job.id`` is the first 16 hex digits of the SHA-256 of
the job's canonical JSON, identical in every process and on every machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bench.suites import Suite


def freeze(value: Any) -> Any:
    """Lists become tuples (recursively) so that override values are hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def variant_label(overrides: dict[str, Any]) -> str:
    """A short human label for a job's overrides (``""`` when there are none)."""
    def fmt(v: Any) -> str:
        if isinstance(v, list):
            return "+".join(fmt(x) for x in v)
        return str(v)
    return ",".join(f"{k}={fmt(v)}" for k, v in sorted(overrides.items()))


@dataclass(frozen=True)
class Job:
    suite: str
    method: str
    dataset: str
    task: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def make(suite: str, method: str, dataset: str, task: str, seed: int,
             overrides: Mapping[str, Any] | None = None) -> Job:
        ov = tuple(sorted((str(k), freeze(v)) for k, v in (overrides or {}).items()))
        return Job(suite, method, dataset, str(task), int(seed), ov)

    @property
    def overrides_dict(self) -> dict[str, Any]:
        return {k: thaw(v) for k, v in self.overrides}

    def key(self) -> dict[str, Any]:
        """The canonical, JSON-ready description of the job."""
        return {
            "suite": self.suite,
            "method": self.method,
            "overrides": self.overrides_dict,
            "dataset": self.dataset,
            "task": self.task,
            "seed": self.seed,
        }

    @cached_property
    def id(self) -> str:
        text = json.dumps(self.key(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @staticmethod
    def from_key(key: Mapping[str, Any]) -> Job:
        return Job.make(key["suite"], key["method"], key["dataset"], key["task"], key["seed"],
                        key.get("overrides") or {})

    def label(self) -> str:
        ov = variant_label(self.overrides_dict)
        name = f"{self.method}[{ov}]" if ov else self.method
        return f"{name} {self.dataset}/{self.task} s{self.seed}"


def expand(
    suite: Suite,
    tasks_of: Mapping[str, Sequence[str]],
    *,
    methods: Iterable[str] | None = None,
    datasets: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Job]:
    """All jobs of ``suite`` (optionally filtered), sorted and without duplicates.

    Args:
        tasks_of: every dataset's full task list, used where the suite says ``all``.
        extra: per-method overrides added on top of the suite's (from ``--set``).
    """
    method_filter = set(methods) if methods is not None else None
    dataset_filter = set(datasets) if datasets is not None else None
    task_filter = {str(t) for t in tasks} if tasks is not None else None
    seed_list = list(seeds) if seeds is not None else list(suite.seeds)
    out: set[Job] = set()
    for block in suite.blocks:
        for dataset, wanted in block.datasets.items():
            if dataset_filter is not None and dataset not in dataset_filter:
                continue
            dataset_tasks = list(tasks_of[dataset]) if wanted == "all" else list(wanted)
            for method, variants in block.methods.items():
                if method_filter is not None and method not in method_filter:
                    continue
                for variant in variants:
                    overrides = {**variant, **((extra or {}).get(method) or {})}
                    for task in dataset_tasks:
                        if task_filter is not None and str(task) not in task_filter:
                            continue
                        for seed in seed_list:
                            out.add(Job.make(suite.name, method, dataset, task, seed, overrides))
    return sorted(out, key=lambda j: (j.dataset, j.task, j.method, j.overrides, j.seed))
