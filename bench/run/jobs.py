"""Suite -> jobs: expand a suite's grid into job keys (pure, sorted, without duplicates).

The key itself (:class:`~bench.records.key.Job`) lives with the records it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.records.key import Job, variant_label
from bench.run.suites import Suite

__all__ = ["Job", "expand", "variant_label"]


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
