"""``bench list`` and ``bench status``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings, reads_results, suite_refs
from bench.cli._types import SETTING, number, shots_list
from bench.core.errors import BenchError
from bench.core.registry import Registry
from bench.run.adhoc import stored_adhoc
from bench.run.claims import DEFAULT_CLAIM_TIMEOUT
from bench.run.suites import load_suite, suite_names

if TYPE_CHECKING:
    from bench.run.stale import Stale
    from bench.run.status import SuiteTime

#: stale records listed by `bench status` (the count says how many more)
STALE_SHOWN = 5


@click.command("list")
@click.argument("what", type=click.Choice(["methods", "datasets", "suites"]))
@pass_settings
def list_cmd(settings: Settings, what: str) -> None:
    """List registered methods, datasets (plugins included) or suites (shipped, then the
    ad-hoc suites of the results folder, latest first).

    A plugin that cannot be loaded is left out with a warning saying why; plugins waiting for
    an optional dependency (an extra not installed) with one hint per extra.
    """
    out = RichTable(show_header=True, header_style="bold")
    registry: Registry[Any] | None = None
    if what == "methods":
        from bench.methods import METHODS  # the registries import torch: `list suites` does not

        registry = METHODS
        names = METHODS.names()
        out.add_column("method", no_wrap=True)
        out.add_column("class")
        out.add_column("variant")
        out.add_column("summary")
        plugins = _plugin_column(out, METHODS, names)
        for name in names:
            spec = METHODS.get(name)
            variant = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
            out.add_row(name, spec.cls.__name__, variant, spec.summary, *plugins(name))
    elif what == "datasets":
        from bench.datasets import DATASETS

        registry = DATASETS
        names = DATASETS.names()
        out.add_column("dataset", no_wrap=True)
        out.add_column("tasks")
        out.add_column("masks")
        out.add_column("source")
        plugins = _plugin_column(out, DATASETS, names)
        for name in names:
            ds = DATASETS.get(name)
            broken = ""
            try:
                tasks = ds.tasks_in(settings.data_root)
            except BenchError:  # folder datasets list what is on disk
                tasks = []
            except Exception as exc:  # a plugin's bug must not hide the other datasets
                tasks, broken = [], f"(cannot list them: {type(exc).__name__}: {exc})"
            shown = ", ".join(tasks[:6]) + (f", … ({len(tasks)})" if len(tasks) > 6 else "")
            shown = shown or broken or "(its sub-folders)"
            out.add_row(name, shown, "yes" if ds.has_masks else "no", ds.info.source,
                        *plugins(name))
    else:
        out.add_column("suite")
        out.add_column("seeds")
        out.add_column("methods")
        out.add_column("datasets")
        refs: list[str | Path] = [*suite_names(), *stored_adhoc(settings.results_root)]
        for ref in refs:
            s = load_suite(ref)  # shipped, then the ad-hoc runs under --results (latest first)
            out.add_row(s.name, ",".join(map(str, s.seeds)), ", ".join(s.method_names()),
                        ", ".join(s.dataset_names()))
    settings.console.print(out)
    waiting: dict[str, list[str]] = {}  # plugins whose optional dependency is not installed
    for err in registry.plugin_errors() if registry is not None else []:
        if err.missing is not None:
            waiting.setdefault(err.missing, []).append(err.name)
        else:
            settings.err.print(f"warning: {err.message}", highlight=False, soft_wrap=True)
    for missing, names in waiting.items():  # one hint per missing extra, not one per name
        settings.err.print(f"hint: not available: {', '.join(names)}: {missing}",
                           highlight=False, soft_wrap=True, markup=False)


def _plugin_column(out: RichTable, registry: Registry[Any],
                   names: list[str]) -> Callable[[str], tuple[str, ...]]:
    """A last column "plugin" (distribution and version) when some name comes from one."""
    if not any(registry.origin(n) for n in names):
        return lambda name: ()
    out.add_column("plugin", overflow="fold")

    def cell(name: str) -> tuple[str, ...]:
        origin = registry.origin(name)
        return (origin.label() if origin else "built-in",)

    return cell


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@click.command()
@click.option("--suite", "suites", multiple=True, callback=suite_refs,
              help="Suite(s) to report: names, YAML files, adhoc (default: all, ad-hoc ones "
                   "included).")
@click.option("--workers", "n_workers", type=click.IntRange(min=1), default=None,
              help="Workers the ETA divides the work by (default: jobs running now, at least 1).")
@click.option("--claim-timeout", type=number(min=0, min_open=True),
              default=DEFAULT_CLAIM_TIMEOUT, show_default=True, metavar="SECONDS",
              help="A claim not refreshed for this long counts as dead (its job as pending).")
@click.option("--by-method", is_flag=True,
              help="Also the recorded time of each suite by method (total, mean per job).")
@click.option("--setting", "settings_", multiple=True, type=SETTING,
              help="Count the suites' jobs in this setting (repeatable; default: each suite's "
                   "settings).")
@click.option("--shots", default=None, metavar="K,...",
              help="k of the few-shot setting (default: the suites').")
@reads_results
def status(settings: Settings, suites: tuple[str, ...], n_workers: int | None,
           claim_timeout: float, by_method: bool, settings_: tuple[str, ...],
           shots: str | None) -> None:
    """Done / failed / running / pending jobs per suite, with an ETA.

    Running: held by a live claim of a runner. ETA: the expected time of the pending jobs (and
    what is left of the running ones) divided by the workers; a job's expected time is the
    median recorded total time of the suite's ok jobs with the same method, variant and dataset
    (falling back to the same method and dataset, the same method, then the whole suite).
    """
    from bench.records.store import Store
    from bench.run.select import select_jobs
    from bench.run.status import suite_progress, time_by_method

    store = Store(settings.results_root)
    names = list(suites) or [*suite_names(), *map(str, stored_adhoc(settings.results_root))]
    workers: set[int] = set()
    out = RichTable(show_header=True, header_style="bold")
    for col in ("suite", "jobs", "done", "stale", "failed", "running", "pending", "time",
                "ETA"):
        out.add_column(col, justify="right" if col != "suite" else "left")
    live = []
    stale: list[tuple[str, Stale]] = []
    timings: list[SuiteTime] = []
    for name in names:
        try:
            suite, jobs = select_jobs(name, data_root=settings.data_root, check_data=False,
                                      settings=settings_, shots=shots_list(shots))
        except BenchError as exc:  # one suite's missing data must not hide the others
            if suites:  # asked for by name: the user needs the reason
                raise
            out.add_row(name, "–", "–", "–", "–", "–", "–", "–", f"unavailable: {exc}")
            continue
        p = suite_progress(store, suite.name, jobs, workers=n_workers,
                           claim_timeout=claim_timeout)
        out.add_row(suite.name, str(p.jobs), str(p.done), str(len(p.stale)), str(p.failed),
                    str(p.running), str(p.pending), _duration(p.recorded_s),
                    _duration(p.eta_s))
        stale += [(suite.name, s) for s in p.stale]
        live += [(suite.name, c) for c in p.live]
        workers.add(p.workers)
        if by_method:
            timings.append(time_by_method(suite.name, store.records(suite.name), jobs))
    settings.console.print(out)
    settings.console.print(f"time: recorded; ETA: expected time of the jobs left / "
                           f"{'|'.join(map(str, sorted(workers)))} worker(s)", highlight=False)
    for suite_name, s in stale[:STALE_SHOWN]:
        settings.console.print(f"stale: {suite_name} {s.describe()}", highlight=False,
                               soft_wrap=True, markup=False)
    if stale:
        more = f" (and {len(stale) - STALE_SHOWN} more)" if len(stale) > STALE_SHOWN else ""
        settings.console.print(f"{len(stale)} stale record(s){more}: their config differs from "
                               "today's resolution; `bench run ... --rerun-stale` reruns them",
                               highlight=False)
    if live:
        run_table = RichTable(show_header=True, header_style="bold", title="running")
        for col in ("suite", "job", "host", "pid", "worker", "for"):
            run_table.add_column(col)
        for suite_name, c in live:
            run_table.add_row(suite_name, c["label"], str(c.get("host")), str(c.get("pid")),
                              str(c.get("worker", "")), _duration(c["elapsed_s"]))
        settings.console.print(run_table)
    for t in timings:
        _print_time_by_method(settings, t)


def _print_time_by_method(settings: Settings, t: SuiteTime) -> None:
    out = RichTable(show_header=True, header_style="bold",
                    title=f"{t.suite}: recorded time by method (ok jobs)")
    for col in ("method", "jobs", "total", "mean/job", "mean fit", "mean score"):
        out.add_column(col, justify="left" if col == "method" else "right")
    for m in t.methods:
        out.add_row(m.method, str(m.jobs), _duration(m.total_s), _seconds(m.mean_s),
                    _seconds(m.fit_mean_s), _seconds(m.score_mean_s))
    out.add_section()
    out.add_row("all", str(t.jobs), _duration(t.total_s),
                _seconds(t.total_s / t.jobs if t.jobs else None), "", "")
    settings.console.print(out)
    span = "–" if t.span_s is None else _duration(t.span_s)
    settings.console.print(f"{t.suite}: {t.jobs} ok job(s), {_duration(t.total_s)} of job time; "
                           f"wall clock from the first start to the last end: {span}",
                           highlight=False)


def _seconds(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s"
