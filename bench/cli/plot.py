"""``bench plot ...`` and ``bench report``: figures and the HTML page, written under results/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pandas as pd

from bench.cli._common import Settings, reads_results, suite_names
from bench.cli._types import SEED, SETTING
from bench.cli.table import check_metric, load_records, task_orders, write_or_echo
from bench.core.errors import UsageError
from bench.records.store import Store
from bench.report import figures, stats
from bench.report.html import build_report
from bench.report.reference import load_reference
from bench.run.suites import load_suite

F = Callable[..., Any]


def _common(f: F) -> F:
    """Options every ``bench plot`` command shares."""
    for deco in reversed([
        click.option("--suite", "suites", multiple=True, callback=suite_names,
                     help="Suite(s): names, YAML files, adhoc (default: all)."),
        click.option("--out-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder for the images (default: results/figures/<suite>)."),
        click.option("--image-format", "image_format", type=click.Choice(["png", "pdf", "svg"]),
                     default="png", show_default=True),
        click.option("--dpi", type=click.IntRange(50, 600), default=150, show_default=True),
    ]):
        f = deco(f)
    return f


def _metric_option(f: F) -> F:
    return click.option("--metric", default="image_auroc", show_default=True)(f)


def _save(settings: Settings, named: figures.Named, suites: tuple[str, ...],
          out_dir: str | None, image_format: str, dpi: int) -> list[Path]:
    if not named:
        raise UsageError("nothing to plot for this selection")
    folder = Path(out_dir) if out_dir else (
        settings.results_root / "figures" / ("+".join(suites) if suites else "all"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in named:
        path = folder / f"{name}.{image_format}"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
        settings.console.print(f"wrote {path}", highlight=False)
    return paths


@click.group()
def plot() -> None:
    """Figures from the records, saved under results/figures/<suite>/."""


@plot.command("bars")
@_common
@_metric_option
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--paper", is_flag=True, help="Add published MKD numbers as hatched bars.")
@reads_results
def bars_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
             image_format: str, dpi: int, metric: str, datasets: tuple[str, ...],
             paper: bool) -> None:
    """Per-task grouped bars, one colour per method, one figure per dataset."""
    df = load_records(settings, suites)
    check_metric(df, metric)
    if datasets:
        df = df[df["dataset"].isin(datasets)]
    ref = load_reference(settings.results_root) if paper else None
    orders = task_orders(settings, sorted(df["dataset"].unique()))
    _save(settings, figures.bars(df, metric, orders, ref), suites, out_dir, image_format, dpi)


@plot.command("heatmap")
@_common
@_metric_option
@reads_results
def heatmap_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
                image_format: str, dpi: int, metric: str) -> None:
    """Method × dataset heat map of the recomputed means."""
    df = load_records(settings, suites)
    check_metric(df, metric)
    orders = task_orders(settings, sorted(df["dataset"].unique()))
    named = figures.heatmap(df, metric, orders)
    _save(settings, named, suites, out_dir, image_format, dpi)


@plot.command("ablation")
@_common
@_metric_option
@click.option("--factor", default="layers", show_default=True,
              help="The config field whose levels form the x axis.")
@reads_results
def ablation_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
                 image_format: str, dpi: int, metric: str, factor: str) -> None:
    """Mean over tasks against the factor's levels (for layers: against the number of layers)."""
    df = load_records(settings, suites)
    check_metric(df, metric)
    orders = task_orders(settings, sorted(df["dataset"].unique()))
    named = figures.ablation(df, metric, factor, orders)
    _save(settings, named, suites, out_dir, image_format, dpi)


@plot.command("curves")
@_common
@_metric_option
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@reads_results
def curves_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
               image_format: str, dpi: int, metric: str, datasets: tuple[str, ...]) -> None:
    """Training curves from the per-epoch history (methods run with eval_every > 0)."""
    named = figures.curves(Store(settings.results_root), suites, metric, datasets)
    if not named:
        raise UsageError(f"no record has a training history with {metric} (run with "
                         "--set eval_every=N)")
    _save(settings, named, suites, out_dir, image_format, dpi)


@plot.command("cd")
@_common
@_metric_option
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--posthoc", type=click.Choice(stats.POSTHOCS), default="nemenyi",
              show_default=True,
              help="The post-hoc test whose non-significant pairs the bars join.")
@click.option("--drop-incomplete", is_flag=True,
              help="Drop tasks a column lacks (the title says how many) instead of refusing.")
@click.option("--allow-unequal-seeds", is_flag=True,
              help="Rank cells that rest on different numbers of seeds (else refused).")
@reads_results
def cd_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None, image_format: str,
           dpi: int, metric: str, datasets: tuple[str, ...], posthoc: str,
           drop_incomplete: bool, allow_unequal_seeds: bool) -> None:
    """Critical-difference diagrams of average ranks, per dataset and over all datasets."""
    df = load_records(settings, suites)
    check_metric(df, metric)
    names = list(datasets) or sorted(df["dataset"].unique())
    named, skipped = figures.cd(df, metric, names, task_orders(settings, names), posthoc,
                                drop_incomplete, allow_unequal_seeds)
    if not named:
        raise UsageError(f"no critical-difference diagram: {skipped[0]}")
    for line in skipped:
        settings.console.print(f"no diagram for {line}", highlight=False, soft_wrap=True)
    _save(settings, named, suites, out_dir, image_format, dpi)


@plot.command("corruptions")
@_common
@_metric_option
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@reads_results
def corruptions_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
                    image_format: str, dpi: int, metric: str, datasets: tuple[str, ...]) -> None:
    """The corrupted setting: the metric against severity (0 = clean), one line per
    corruption, one figure per dataset and method."""
    cdf = Store(settings.results_root).load_corruptions(list(suites) or None)
    named = figures.corruptions(cdf, metric, datasets)
    if not named:
        raise UsageError(f"no corrupted-setting records with {metric} (run bench run "
                         "--setting corrupted)")
    _save(settings, named, suites, out_dir, image_format, dpi)


def _job_options(f: F) -> F:
    for deco in reversed([
        click.option("--job", "job_id", default=None, help="A job id (see `bench run --dry-run`)."),
        click.option("--method", default=None),
        click.option("--dataset", default=None),
        click.option("--task", default=None),
        click.option("--seed", type=SEED, default=None),
    ]):
        f = deco(f)
    return f


def _filter(suites: tuple[str, ...], job_id: str | None, method: str | None,
            dataset: str | None, task: str | None, seed: int | None) -> figures.JobFilter:
    return figures.JobFilter(suites=suites, job_id=job_id, method=method, dataset=dataset,
                             task=task, seed=seed)


@plot.command("roc")
@_common
@_job_options
@reads_results
def roc_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
            image_format: str, dpi: int, job_id: str | None, method: str | None,
            dataset: str | None, task: str | None, seed: int | None) -> None:
    """ROC curves of the jobs of one task (one curve per method / seed)."""
    flt = _filter(suites, job_id, method, dataset, task, seed)
    _save(settings, figures.roc(Store(settings.results_root), flt), suites, out_dir,
          image_format, dpi)


@plot.command("overlays")
@_common
@_job_options
@reads_results
def overlays_cmd(settings: Settings, suites: tuple[str, ...], out_dir: str | None,
                 image_format: str, dpi: int, job_id: str | None, method: str | None,
                 dataset: str | None, task: str | None, seed: int | None) -> None:
    """Image, mask contour and anomaly map for the test images one job kept."""
    flt = _filter(suites, job_id, method, dataset, task, seed)
    _save(settings, figures.overlay(Store(settings.results_root), flt), suites, out_dir,
          image_format, dpi)


@click.command()
@click.option("--suite", required=True, callback=suite_names,
              help="The suite to report on: a name, a YAML file, adhoc.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output file (default: results/report-<suite>.html).")
@click.option("--dpi", type=click.IntRange(50, 300), default=90, show_default=True)
@click.option("--versus", default=None, metavar="METHOD",
              help="The method (or column title) the Statistics section compares every other "
                   "column with (default: the method of the published paper numbers if it has "
                   "records, else the suite's first method).")
@click.option("--setting", "settings_", multiple=True, type=SETTING,
              help="Only records of this setting (repeatable; default: every setting, each "
                   "with its own tables; the statistics compare the first setting's columns).")
@reads_results
def report(settings: Settings, suite: str, output: str | None, dpi: int,
           versus: str | None, settings_: tuple[str, ...]) -> None:
    """One self-contained HTML page with the suite's tables and figures."""
    store = Store(settings.results_root)
    df = load_records(settings, (suite,))
    reference = load_reference(settings.results_root)
    if versus is None:
        versus = stats.default_reference(suite_methods(suite, df), reference)
    orders = task_orders(settings, sorted(df["dataset"].unique()))
    text = build_report(store, suite, task_orders=orders, reference=reference, dpi=dpi,
                        versus=versus, settings=settings_)
    path = output or str(settings.results_root / f"report-{suite}.html")
    write_or_echo(settings, text, path)


def suite_methods(suite: str, df: pd.DataFrame) -> list[str]:
    """The methods with records, in the order the suite's file lists them (a suite without a
    file: alphabetical)."""
    recorded = sorted(str(m) for m in df["method"].dropna().unique())
    try:
        order = [m for block in load_suite(suite).blocks for m in block.methods]
    except UsageError:  # records of a suite file that is not at hand
        order = []
    listed = [m for m in dict.fromkeys(order) if m in recorded]
    return listed + [m for m in recorded if m not in listed]
