"""Suite -> jobs: expand a suite's grid into job keys (pure, sorted, without duplicates).

The grid is (setting x dataset x task x method variant x seed): the ``one-class`` and
``corrupted`` settings make one job per task, ``few-shot`` one per task and k, ``unified`` one
per dataset, whose task is :data:`~bench.core.settings.UNIFIED_TASK` (the block says ``all``)
or the block's tasks joined by ``+``. The key itself (:class:`~bench.records.key.Job`) lives
with the records it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.core.settings import FEW_SHOT, UNIFIED, UNIFIED_TASK
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
    settings: Iterable[str] | None = None,
    shots: Iterable[int] | None = None,
) -> list[Job]:
    """All jobs of ``suite`` (optionally filtered), sorted and without duplicates.

    Args:
        tasks_of: every dataset's full task list, used where the suite says ``all``.
        extra: per-method overrides added on top of the suite's (from ``--set``).
        settings, shots: instead of the suite's (and its blocks') settings and shots.
    """
    method_filter = set(methods) if methods is not None else None
    dataset_filter = set(datasets) if datasets is not None else None
    task_filter = {str(t) for t in tasks} if tasks is not None else None
    seed_list = list(seeds) if seeds is not None else None
    setting_list = list(settings) if settings is not None else None
    shot_list = list(shots) if shots is not None else None
    out: set[Job] = set()
    for block in suite.blocks:
        block_settings = setting_list or list(suite.block_settings(block))
        block_shots = shot_list or list(suite.block_shots(block))
        block_seeds = seed_list or list(block.seeds or suite.seeds)
        for dataset, wanted in block.datasets.items():
            if dataset_filter is not None and dataset not in dataset_filter:
                continue
            dataset_tasks = list(tasks_of[dataset]) if wanted == "all" else list(wanted)
            unified_task = UNIFIED_TASK if wanted == "all" else "+".join(map(str, wanted))
            for method, variants in block.methods.items():
                if method_filter is not None and method not in method_filter:
                    continue
                for variant in variants:
                    overrides = {**variant, **((extra or {}).get(method) or {})}
                    for setting in block_settings:
                        if setting == UNIFIED:
                            cells: list[tuple[str, int | None]] = [(unified_task, None)]
                        elif setting == FEW_SHOT:
                            cells = [(str(t), k) for t in dataset_tasks for k in block_shots]
                        else:
                            cells = [(str(t), None) for t in dataset_tasks]
                        for task, k in cells:
                            if task_filter is not None and task not in task_filter:
                                continue
                            for seed in block_seeds:
                                out.add(Job.make(suite.name, method, dataset, task, seed,
                                                 overrides, setting=setting, shots=k))
    return sorted(out, key=lambda j: (j.dataset, j.task, j.method, j.overrides, j.seed,
                                      j.setting, j.shots or 0))
