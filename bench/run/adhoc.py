"""Ad-hoc suites: ``bench run --method M --dataset D`` without a suite file.

The selection becomes a one-off suite named ``adhoc-<8 hex digits>``, a hash of its sorted
methods and datasets: the same comparison always lands in the same suite (so a run resumes, and
``bench table --suite adhoc-...`` shows it), whatever tasks, seeds and ``--set`` values each run
adds. The jobs run are exactly the selection (``--task`` filters, ``--seeds`` defaults to 0).

Every run also writes the suite's definition, the union of what its runs selected, next to its
records (``<results>/runs/<name>/suite.yaml``), so that ``bench status``, ``bench check`` and
``bench run --suite adhoc-...`` know its jobs. ``--suite adhoc`` in the commands that read
results names the ad-hoc suite run last.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import UsageError
from bench.core.settings import DEFAULT_SETTING, SETTINGS, UNIFIED, UNIFIED_TASK
from bench.core.yamlfile import read_yaml
from bench.records.files import atomic_write
from bench.records.key import SUITE_NAME, Job
from bench.run.suites import SUITE_DIR, Block, Suite, load_suite

#: the ``--suite`` value that asks for an ad-hoc suite (``run``) or the latest one (the rest)
ADHOC = "adhoc"
PREFIX = "adhoc-"
#: the definition's file name in the suite's records folder
DEFINITION = "suite.yaml"


def adhoc_name(methods: Sequence[str], datasets: Sequence[str]) -> str:
    """``adhoc-`` and the first 8 hex digits of the SHA-256 of the sorted selection."""
    key = json.dumps({"methods": sorted(set(methods)), "datasets": sorted(set(datasets))},
                     sort_keys=True, separators=(",", ":"))
    return PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def adhoc_suite(methods: Sequence[str], datasets: Sequence[str],
                seeds: Sequence[int] = ()) -> Suite:
    """The one-off suite of a selection: every method on every task of every dataset (``--task``
    filters when jobs are selected), with ``seeds`` (default ``[0]``)."""
    if not methods or not datasets:
        raise UsageError("an ad-hoc run needs --method and --dataset (or a suite: --suite)")
    # the registries (and torch) only when a selection is checked: `bench list suites` and the
    # `--suite` callbacks read suite files without them
    from bench.datasets import DATASETS
    from bench.methods import METHODS

    for m in methods:
        METHODS.get(m)  # an unknown name, a broken plugin: one line
    for d in datasets:
        DATASETS.get(d)
    name = adhoc_name(methods, datasets)
    block = Block(datasets={d: "all" for d in sorted(set(datasets))},
                  methods={m: [{}] for m in sorted(set(methods))})
    return Suite(name, _describe(methods, datasets), tuple(sorted(set(seeds or [0]))),
                 (block,), "ad-hoc selection")


def _describe(methods: Sequence[str], datasets: Sequence[str]) -> str:
    return (f"ad-hoc: {', '.join(sorted(set(methods)))} on {', '.join(sorted(set(datasets)))} "
            "(bench run --method ... --dataset ...)")


def definition_path(results_root: Path, name: str) -> Path:
    return Path(results_root) / "runs" / name / DEFINITION


def record_definition(results_root: Path, suite: Suite, jobs: Sequence[Job],
                      all_tasks: Mapping[str, bool]) -> Path:
    """Add what ``jobs`` ran to the stored definition of ad-hoc ``suite`` (created if absent):
    seeds, variants (each method's overrides) and tasks (``all`` for a dataset run without
    ``--task``, as ``all_tasks`` says), each the union with earlier runs'."""
    path = definition_path(results_root, suite.name)
    raw: dict[str, Any] = {"name": suite.name, "description": suite.description,
                           "seeds": [], "datasets": {}, "methods": {}}
    if path.is_file():
        old = read_yaml(path) or {}
        if isinstance(old, Mapping):
            raw.update({k: old[k] for k in ("seeds", "datasets", "methods", "settings", "shots")
                        if k in old})
    raw["seeds"] = sorted({*map(int, raw["seeds"] or []), *(j.seed for j in jobs)})
    settings = {*(raw.get("settings") or [DEFAULT_SETTING]), *(j.setting for j in jobs)}
    if settings != {DEFAULT_SETTING}:  # a one-class definition reads as it did before settings
        raw["settings"] = [s for s in SETTINGS if s in settings]
    shots = {*map(int, raw.get("shots") or []), *(j.shots for j in jobs if j.shots)}
    if shots:
        raw["shots"] = sorted(shots)
    datasets: dict[str, Any] = dict(raw["datasets"] or {})
    for d in sorted({j.dataset for j in jobs}):
        before = datasets.get(d) or []
        if all_tasks.get(d) or before == "all" or any(
                j.task == UNIFIED_TASK for j in jobs if j.dataset == d and j.setting == UNIFIED):
            datasets[d] = "all"
        else:
            datasets[d] = sorted({*map(str, before), *(t for j in jobs if j.dataset == d
                                                       for t in _tasks(j))})
    methods: dict[str, Any] = dict(raw["methods"] or {})
    for m in sorted({j.method for j in jobs}):
        variants = [dict(v) for v in methods.get(m) or []]
        for job in jobs:
            if job.method == m and job.overrides_dict not in variants:
                variants.append(job.overrides_dict)
        methods[m] = sorted(variants, key=lambda v: (len(v), json.dumps(v, sort_keys=True)))
    raw.update(datasets=datasets, methods=methods)
    text = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


def _tasks(job: Job) -> list[str]:
    """The tasks a job names: a unified job's categories (joined by ``+``), else its task."""
    return job.task.split("+") if job.setting == UNIFIED else [job.task]


def stored_adhoc(results_root: Path) -> list[Path]:
    """The definitions of the ad-hoc suites under ``results_root``, the latest run first."""
    base = Path(results_root) / "runs"
    if not base.is_dir():
        return []
    found = [p for p in base.glob(f"{PREFIX}*/{DEFINITION}") if p.is_file()]
    return sorted(found, key=lambda p: (-p.stat().st_mtime_ns, p.parent.name))


def _latest(results_root: Path) -> Path:
    found = stored_adhoc(results_root)
    if not found:
        raise UsageError(f"no ad-hoc suite under {Path(results_root) / 'runs'} yet; make one "
                         "with bench run --method M --dataset D")
    return found[0]


def _is_file_arg(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or Path(value).is_file()


def suite_ref(value: str, results_root: Path) -> str:
    """A ``--suite`` value as :func:`~bench.run.select.select_jobs` takes it: a shipped name,
    a YAML path, or for an ad-hoc suite (by name, or ``adhoc`` for the latest) the path of its
    stored definition."""
    if value == ADHOC:
        return str(_latest(results_root))
    if _is_file_arg(value) or (SUITE_DIR / f"{value}.yaml").is_file():
        return value
    if SUITE_NAME.fullmatch(value) and ".." not in value:
        stored = definition_path(results_root, value)
        if stored.is_file():
            return str(stored)
    return value


def suite_name(value: str, results_root: Path) -> str:
    """The name of the suite a ``--suite`` value means (a YAML file's ``name``, the latest
    ad-hoc suite's for ``adhoc``), for the commands that read records by suite name."""
    if value == ADHOC:
        return _latest(results_root).parent.name
    if _is_file_arg(value):
        return load_suite(value).name
    return value
