"""``bench run``: select jobs from a suite and run those without a record."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
import numpy as np
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings
from bench.cli._types import SETTING, int_list, number, shots_list
from bench.core.config import parse_set
from bench.core.errors import UsageError
from bench.core.metrics import DEFAULT_THRESHOLD_QUANTILE
from bench.records.record import JobSummary
from bench.run.backends import BACKENDS
from bench.run.claims import DEFAULT_CLAIM_TIMEOUT
from bench.run.suites import check_seed

if TYPE_CHECKING:
    from bench.run.runner import RunReport


def _seeds(text: str | None) -> list[int]:
    return int_list(text, "--seeds", check_seed)


@click.command()
@click.option("--all", "all_", is_flag=True, help="Run every job of the suite.")
@click.option("--suite", default=None,
              help="A shipped suite name, a YAML file, an ad-hoc suite's name, or adhoc: a "
                   "one-off suite of --method x --dataset. Default: paper, or adhoc when "
                   "--method and --dataset are given without --all.")
@click.option("--method", "methods", multiple=True, help="Only this method (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--task", "tasks", multiple=True, help="Only this task / class (repeatable).")
@click.option("--seeds", default=None, help="Seeds to run, e.g. 0,1,2 (default: the suite's).")
@click.option("--setting", "settings_", multiple=True, type=SETTING,
              help="Run in this setting (repeatable; default: the suite's): one-class, unified "
                   "(one model per dataset on all its categories), few-shot (k images per "
                   "task, --shots), corrupted (also scored on corrupted test copies). See "
                   "docs/settings.md.")
@click.option("--shots", default=None, metavar="K,...",
              help="k of the few-shot setting, e.g. 1,2,4,8 (default: the suite's).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a method config field (repeatable).")
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs in parallel: local worker processes, or the LocalCluster's workers "
                   "with --backend dask and no --scheduler.")
@click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True,
              help="local: joblib processes on this machine; dask: a Dask cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786 "
                   "(with --backend dask; default: a LocalCluster of --jobs workers).")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:K. auto and cuda spread workers over the GPUs.")
@click.option("--deterministic", is_flag=True,
              help="Also use torch's deterministic algorithms (jobs are always seeded).")
@click.option("--retry-failed", is_flag=True, help="Run again jobs whose record says failed.")
@click.option("--rerun-stale", is_flag=True,
              help="Run again ok jobs whose record's config differs from what their method and "
                   "preset resolve to today (else such a selection is refused).")
@click.option("--timeout", type=number(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Kill a job that runs longer and record it as failed (timeout). Each job "
                   "then runs in its own subprocess (a few seconds to start: imports).")
@click.option("--claim-timeout", type=number(min=0, min_open=True),
              default=DEFAULT_CLAIM_TIMEOUT, show_default=True, metavar="SECONDS",
              help="Take over a job claimed by a runner that has not refreshed its claim for "
                   "this long (claims of dead processes on the same host are taken at once).")
@click.option("--threshold-quantile", type=number(min=0, max=1, min_open=True),
              default=DEFAULT_THRESHOLD_QUANTILE, show_default=True, metavar="Q",
              help="After fit, score the training (normal) images and record the F1 on the "
                   "test set at the Q-quantile of their scores (image_f1_at_train_quantile).")
@click.option("--no-train-threshold", is_flag=True,
              help="Do not score the training set: no image_f1_at_train_quantile (saves one "
                   "scoring pass over the training images per job).")
@click.option("--dry-run", is_flag=True, help="List the jobs that would run, run nothing.")
@pass_settings
def run(settings: Settings, all_: bool, suite: str | None, methods: tuple[str, ...],
        datasets: tuple[str, ...], tasks: tuple[str, ...], seeds: str | None,
        settings_: tuple[str, ...], shots: str | None, sets: tuple[str, ...], n_jobs: int,
        backend: str, scheduler: str | None, device: str,
        deterministic: bool, retry_failed: bool, rerun_stale: bool, timeout: float | None,
        claim_timeout: float,
        threshold_quantile: float, no_train_threshold: bool, dry_run: bool) -> None:
    """Run the jobs of a suite (``--all``, or narrowed by --method/--dataset/--task).

    Without --suite, --method and --dataset (and no --all) make an ad-hoc suite of that
    selection, named adhoc-<hash of the methods and datasets>; `bench table --suite adhoc`
    shows the latest one.

    Several runners may work on one suite at once (on one machine, or on several sharing the
    results folder): each job is claimed before it runs and recorded once.
    """
    if not (all_ or methods or datasets or tasks):
        raise UsageError("nothing selected: pass --all, or narrow with --method/--dataset/--task")
    if scheduler and backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    if no_train_threshold and click.get_current_context().get_parameter_source(
            "threshold_quantile") is not click.core.ParameterSource.DEFAULT:
        raise UsageError("--threshold-quantile needs the training set scored: drop "
                         "--no-train-threshold")
    # imported here, not at the top: they load the registries (and torch)
    from bench.core.environment import resolve_device
    from bench.run.adhoc import ADHOC, adhoc_suite, record_definition, suite_ref
    from bench.run.runner import RunOptions
    from bench.run.runner import run as run_jobs
    from bench.run.select import select_jobs

    overrides = parse_set(sets)
    adhoc = suite == ADHOC or (suite is None and bool(methods) and bool(datasets) and not all_)
    if adhoc:
        the_suite, jobs = select_jobs(adhoc_suite(methods, datasets, _seeds(seeds)), tasks=tasks,
                                      overrides=overrides, data_root=settings.data_root,
                                      check_data=not dry_run, settings=settings_,
                                      shots=shots_list(shots))
    else:
        the_suite, jobs = select_jobs(suite_ref(suite or "paper", settings.results_root),
                                      methods=methods, datasets=datasets, tasks=tasks,
                                      seeds=_seeds(seeds), overrides=overrides,
                                      data_root=settings.data_root, check_data=not dry_run,
                                      settings=settings_, shots=shots_list(shots))
    resolve_device(device, check_here=not scheduler)  # a cluster's GPUs are not visible here
    con = settings.console
    if dry_run:
        for job in jobs:
            con.print(f"{job.id}  {job.label()}", highlight=False)
        con.print(f"{len(jobs)} job(s) in suite {the_suite.name}")
        return
    options = RunOptions(results_root=settings.results_root, data_root=settings.data_root,
                         device=device, n_jobs=n_jobs, deterministic=deterministic,
                         retry_failed=retry_failed, rerun_stale=rerun_stale, backend=backend,
                         scheduler=scheduler,
                         timeout=timeout, claim_timeout=claim_timeout,
                         threshold_quantile=None if no_train_threshold else threshold_quantile)
    if adhoc:
        record_definition(settings.results_root, the_suite, jobs,
                          {d: not tasks for d in datasets})
    report = run_jobs(jobs, options, console=con, quiet=settings.quiet)
    _summarize(settings, the_suite.name, report)
    if adhoc:
        con.print(f"ad-hoc suite {the_suite.name} ({', '.join(the_suite.method_names())} on "
                  f"{', '.join(the_suite.dataset_names())}); its table: bench table --suite "
                  f"{the_suite.name}", highlight=False, soft_wrap=True)
    if not report.ok:
        sys.exit(1)


def _summarize(settings: Settings, suite: str, report: RunReport) -> None:
    con = settings.console
    ran = len(report.results)
    con.print(f"suite [bold]{suite}[/]: {report.selected} job(s) selected, {ran} run now, "
              f"{len(report.skipped_ok)} already done"
              + (f", {len(report.skipped_failed)} failed earlier (use --retry-failed)"
                 if report.skipped_failed else "")
              + (f", {len(report.skipped_running)} running in another runner"
                 if report.skipped_running else ""))
    if ran:
        groups: dict[tuple[str, str], list[JobSummary]] = {}
        for r in report.results:
            method = f"{r.method} [{r.variant}]" if r.variant else r.method
            dataset = r.dataset if r.setting == "one-class" else f"{r.dataset} ({r.setting})"
            groups.setdefault((method, dataset), []).append(r)
        out = RichTable(show_header=True, header_style="bold", title="this run")
        for col in ("method", "dataset", "jobs", "ok", "failed", "mean image AUROC", "time"):
            out.add_column(col)
        for (method, dataset), rs in sorted(groups.items()):
            ok = [r for r in rs if r.ok]
            aucs = [a for r in ok if (a := r.metrics.get("image_auroc")) is not None]
            out.add_row(method, dataset, str(len(rs)), str(len(ok)), str(len(rs) - len(ok)),
                        f"{100 * np.mean(aucs):.1f}" if aucs else "–",
                        f"{sum(r.total_s for r in rs):.0f} s")
        con.print(out)
    if report.failed:
        con.print(f"[bold red]{len(report.failed)} job(s) failed:[/]")
        for r in report.failed:
            con.print(f"  {r.id}  {r.label}: {r.error}", highlight=False)
