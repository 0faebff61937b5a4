"""From a suite name and CLI filters to a validated list of jobs.

Everything a user can get wrong is checked here, before any job starts: unknown suite, method,
dataset or task names; ``--set`` keys that no selected method has; values of the wrong type or
outside what the field allows (each method's config declares it); weight files that do not
exist; datasets and tasks whose files are not on disk; a selection without jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.config import check_files, field_names
from bench.core.errors import UsageError
from bench.core.registry import Registry, imports_allowed, is_import_name
from bench.core.settings import UNIFIED, UNIFIED_TASK
from bench.datasets import DATASETS
from bench.methods import METHODS, MethodConfig
from bench.run.jobs import Job, expand
from bench.run.suites import Suite, load_suite


def _check_names(kind: str, wanted: Iterable[str], known: Sequence[str], where: str) -> None:
    for name in wanted:
        if name not in known:
            raise UsageError(f"unknown {kind} {name!r}{where}; choose from: {', '.join(known)}")


def _unimported(name: str) -> bool:
    """A ``package.module:Class`` name while imports are off (reading results): taken by its
    name, never imported, so not checked beyond it."""
    return is_import_name(name) and not imports_allowed()


def _tasks_in(name: str, data_root: Path | None) -> list[str]:
    if _unimported(name):
        raise UsageError(f"dataset {name!r} is named by its import path: its tasks are not "
                         "known without importing it, which reading results never does")
    return DATASETS.get(name).tasks_in(data_root)


def _check_usable(registry: Registry[Any], wanted: Iterable[str], where: str) -> None:
    """A plugin left out (it fails to import, breaks the contract, reuses a name) or a
    ``package.module:Class`` that does not import: its own one-line reason."""
    for name in wanted:
        if _unimported(name):
            continue
        reason = registry.unavailable(name)
        if reason is not None:
            raise UsageError(f"{reason}{where}")


def split_overrides(methods: Sequence[str], overrides: Mapping[str, Any]
                    ) -> dict[str, dict[str, Any]]:
    """Give each method the ``--set`` keys it has; a key that no method has is an error."""
    per_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for key, value in overrides.items():
        takers = [m for m in methods if key in field_names(METHODS.get(m).cls.Config)]
        if not takers:
            fields = sorted({f for m in methods for f in field_names(METHODS.get(m).cls.Config)})
            raise UsageError(f"--set {key}: no selected method has this field; "
                             f"valid fields: {', '.join(fields)}")
        for m in takers:
            per_method[m][key] = value
    return per_method


def _paired_datasets(suite: Suite, methods: Sequence[str], datasets: Sequence[str]) -> list[str]:
    """The datasets that some block of the suite pairs with a selected method."""
    return sorted({d for b in suite.blocks for d in b.datasets
                   if (not datasets or d in datasets)
                   and any(not methods or m in methods for m in b.methods)})


def _no_jobs(suite: Suite, methods: Sequence[str], datasets: Sequence[str],
             tasks: Sequence[str], tasks_of: Mapping[str, Sequence[str]]) -> UsageError:
    """Why a selection holds no job, in one line."""
    where = f"suite {suite.name} ({suite.source})"
    empty = [d for d in _paired_datasets(suite, methods, datasets) if not tasks_of.get(d)]
    if empty:
        return UsageError(f"no job to run in {where}: dataset(s) {', '.join(empty)} have no "
                          "tasks")
    asked = [f"{kind} {', '.join(names)}" for kind, names in
             (("method", methods), ("dataset", datasets), ("task", tasks)) if names]
    if not asked:
        return UsageError(f"no job to run in {where}: it pairs no dataset with a method")
    return UsageError(f"no job of {where} matches the selection ({'; '.join(asked)}): no block "
                      "of the suite pairs them; see bench run --suite "
                      f"{suite.name} --all --dry-run")


def _needs_all(suite: Suite, dataset: str) -> bool:
    return any(b.datasets.get(dataset) == "all" for b in suite.blocks)


def unified_tasks(job: Job, tasks_of: Sequence[str]) -> list[str]:
    """The categories a unified job trains on: every task (``all``) or those joined by ``+``."""
    return list(tasks_of) if job.task == UNIFIED_TASK else job.task.split("+")


def job_tasks(job: Job, data_root: Path | None) -> list[str]:
    """The tasks whose files a job reads: its own, or a unified job's categories."""
    if job.setting != UNIFIED:
        return [job.task]
    return unified_tasks(job, DATASETS.get(job.dataset).tasks_in(data_root))


def _check_unified(jobs: Sequence[Job]) -> None:
    for name in sorted({j.dataset for j in jobs if j.setting == UNIFIED}):
        if _unimported(name):
            continue
        ds = DATASETS.get(name)
        if not ds.supports_unified:
            able = [d for d in DATASETS.names() if d in DATASETS
                    and DATASETS.get(d).supports_unified]
            raise UsageError(f"dataset {name} has no unified setting: its tasks are not "
                             "categories of their own (one-vs-rest classes share every image); "
                             f"datasets with one: {', '.join(able)}")


def select_jobs(
    suite_name: str | Path | Suite,
    *,
    methods: Sequence[str] = (),
    datasets: Sequence[str] = (),
    tasks: Sequence[str] = (),
    seeds: Sequence[int] = (),
    overrides: Mapping[str, Any] | None = None,
    data_root: Path | None = None,
    check_data: bool = True,
    settings: Sequence[str] = (),
    shots: Sequence[int] = (),
) -> tuple[Suite, list[Job]]:
    """The suite (a name, a YAML path, or a :class:`Suite`) and its selected jobs, every job's
    config resolved once to validate it.

    Raises :class:`UsageError` for bad names and values (each distinct resolved config goes
    through its method's checks), for a unified setting on a dataset without one, and for a
    selection without jobs. ``settings`` and ``shots`` replace the suite's. With
    ``check_data``, also for weight files that do not exist, and
    :class:`~bench.core.errors.DataMissingError` for data that is not on disk (every selected
    dataset, then every selected task's files).
    """
    suite = suite_name if isinstance(suite_name, Suite) else load_suite(suite_name)
    _check_names("method", methods, suite.method_names(), f" in suite {suite.name}")
    # the selected methods must be usable; one the selection leaves out may be unavailable here
    # (a plugin whose extra is not installed) without stopping the others, but not unknown
    _check_usable(METHODS, list(methods) or suite.method_names(), f" (in suite {suite.name})")
    _check_usable(DATASETS, suite.dataset_names(), f" (in suite {suite.name})")
    _check_names("method", [m for m in suite.method_names() if not _unimported(m)
                            and m not in METHODS and METHODS.unavailable(m) is None],
                 METHODS.names(), f" in suite {suite.name}")
    _check_names("dataset", [d for d in suite.dataset_names()
                             if not _unimported(d) and d not in DATASETS],
                 DATASETS.names(), f" in suite {suite.name}")
    _check_names("dataset", datasets, suite.dataset_names(), f" in suite {suite.name}")
    selected_datasets = list(datasets) or suite.dataset_names()
    if tasks:
        all_tasks = sorted({t for d in selected_datasets for t in _tasks_in(d, data_root)}
                           | {UNIFIED_TASK})
        _check_names("task", tasks, all_tasks, f" in dataset(s) {', '.join(selected_datasets)}")
    for block in suite.blocks:
        for d, wanted in block.datasets.items():
            if wanted != "all" and not _unimported(d):
                for t in wanted:
                    DATASETS.get(d).check_task(t)
    selected_methods = list(methods) or suite.method_names()
    extra = split_overrides(selected_methods, overrides or {})
    tasks_of = {d: _tasks_in(d, data_root) for d in selected_datasets
                if not _unimported(d) or _needs_all(suite, d)}
    jobs = expand(suite, tasks_of, methods=methods or None, datasets=datasets or None,
                  tasks=tasks or None, seeds=seeds or None, extra=extra,
                  settings=settings or None, shots=shots or None)
    if settings and UNIFIED in settings:
        # asked on the command line over a whole suite: the datasets without a unified setting
        # keep their other settings' jobs (a suite file that asks for it is refused)
        dropped = {j for j in jobs if j.setting == UNIFIED and not _unimported(j.dataset)
                   and not DATASETS.get(j.dataset).supports_unified}
        jobs = [j for j in jobs if j not in dropped]
        if dropped and not jobs:
            _check_unified(sorted(dropped, key=lambda j: j.dataset))
    _check_unified(jobs)
    configs: dict[tuple[str, str, Any], tuple[Job, MethodConfig]] = {}
    for job in jobs:
        if _unimported(job.method) or _unimported(job.dataset):
            continue
        family = DATASETS.get(job.dataset).family
        key = (job.method, family, job.overrides)
        if key not in configs:
            try:
                cfg = METHODS.get(job.method).checked_config(family, job.overrides_dict)
            except UsageError as exc:
                raise UsageError(f"{job.method} on {job.dataset}: {exc}") from None
            configs[key] = (job, cfg)
    if check_data:
        for job, cfg in configs.values():
            try:
                check_files(cfg)
            except UsageError as exc:
                raise UsageError(f"{job.method} on {job.dataset}: {exc}") from None
        # the jobs' datasets, and those asked for that yield no job for want of tasks (a folder
        # without categories)
        empty = {d for d in _paired_datasets(suite, methods, datasets) if not tasks_of.get(d)}
        for name in sorted({j.dataset for j in jobs} | empty):
            DATASETS.get(name).check_available(data_root)
        for name in sorted({j.dataset for j in jobs}):
            DATASETS.get(name).check_tasks(data_root, sorted(
                {t for j in jobs if j.dataset == name for t in job_tasks(j, data_root)}))
    if not jobs:
        raise _no_jobs(suite, methods, datasets, tasks, tasks_of)
    return suite, jobs
