"""``bench table``: paper-style tables and ablations from the records."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from bench.cli._common import Settings, reads_results, suite_names
from bench.cli._types import number
from bench.core.errors import BenchError, UsageError
from bench.records.store import Store
from bench.report import stats
from bench.report.aggregate import ablation_factors, build_tables
from bench.report.cost import cost_tables
from bench.report.intervals import with_auroc_intervals
from bench.report.reference import load_reference
from bench.report.render import FORMATS, render
from bench.report.render_stats import render_stats
from bench.report.stat_tables import StatTable, ranks_table, versus_tables


def task_orders(settings: Settings, names: list[str]) -> dict[str, list[str]]:
    """Each registered dataset's own task order (digit order, MVTec's category tuple; a folder
    dataset's categories under --data-root)."""
    from bench.datasets import DATASETS  # imported when a table is built (it loads torch)

    out = {}
    for n in names:
        if n in DATASETS:
            try:
                out[n] = DATASETS.get(n).tasks_in(settings.data_root)
            except BenchError:  # its folder is not here: the records' order
                continue
    return out


def load_records(settings: Settings, suites: tuple[str, ...]) -> pd.DataFrame:
    df = Store(settings.results_root).load(list(suites) or None)
    if df.empty:
        where = ", ".join(suites) if suites else "any suite"
        raise UsageError(f"no records for {where} under {settings.results_root / 'runs'}; "
                         "run `bench run` first")
    return df


def check_metric(df: pd.DataFrame, metric: str) -> None:
    known = sorted(df["metric"].dropna().unique())
    if metric not in known:
        raise UsageError(f"no records have metric {metric!r}; available: {', '.join(known)}")


def write_or_echo(settings: Settings, text: str, output: str | None) -> None:
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        settings.console.print(f"wrote {output}", highlight=False)
    else:
        click.echo(text)


@click.command()
@click.option("--suite", "suites", multiple=True, callback=suite_names,
              help="Suite(s) to tabulate: names, YAML files, adhoc (default: all).")
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--metric", default="image_auroc", show_default=True,
              help="image_auroc, image_ap, image_f1_max, image_f1_at_train_quantile, "
                   "pixel_auroc, pixel_aupro, pixel_f1_max, pixel_auroc_model_res, "
                   "pixel_aupro_model_res, pixel_auroc_mkd, or a history-derived one such as "
                   "image_auroc_converged_mean.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown",
              show_default=True)
@click.option("--digits", type=click.IntRange(0, 4), default=1, show_default=True)
@click.option("--paper", is_flag=True,
              help="Add the published MKD numbers and Δ = ours − paper.")
@click.option("--reruns", is_flag=True,
              help="Add independent re-runs of MKD by others (different protocols).")
@click.option("--published", is_flag=True,
              help="Add other papers' published numbers for the baselines (OC-SVM, Deep SVDD, "
                   "GEOM, ...) with Δ = ours − published; the caption gives each source, its "
                   "status and which numbers are upper bounds (tuned on the test set).")
@click.option("--ablation", "factor", default=None, metavar="FIELD",
              help="Columns = the levels of this config field (e.g. layers, loss_terms, lamda).")
@click.option("--cost", is_flag=True,
              help="Instead of scores: fit seconds, score milliseconds per image, peak RAM and "
                   "peak GPU memory per method and dataset, with the hardware in the caption.")
@click.option("--ranks", is_flag=True,
              help="Instead of scores: each column's average rank over tasks per dataset and "
                   "over all, with the Friedman test and Nemenyi's critical difference.")
@click.option("--versus", default=None, metavar="METHOD",
              help="Instead of scores: every other column against this method (or column "
                   "title): median difference and Holm-corrected Wilcoxon p over tasks.")
@click.option("--drop-incomplete", is_flag=True,
              help="With --ranks/--versus: drop tasks a column lacks (the caption lists them) "
                   "instead of refusing.")
@click.option("--ci", "ci", type=number(50, 99.9), default=None, metavar="LEVEL",
              help="Add a LEVEL% bootstrap interval of the image AUROC to single-seed cells "
                   "(from the saved test scores), e.g. --ci 95.")
@click.option("--allow-unequal-seeds", is_flag=True,
              help="Show the Mean of a column whose tasks have unequal seed counts (else –), "
                   "and rank cells of unequal seed counts (--ranks/--versus; else refused); "
                   "the caption says so.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of the terminal.")
@reads_results
def table(settings: Settings, suites: tuple[str, ...], datasets: tuple[str, ...], metric: str,
          fmt: str, digits: int, paper: bool, reruns: bool, published: bool,
          factor: str | None, cost: bool, ranks: bool,
          versus: str | None, drop_incomplete: bool, ci: float | None,
          allow_unequal_seeds: bool, output: str | None) -> None:
    """One table per dataset: tasks as rows (plus a recomputed Mean), methods as columns."""
    df = load_records(settings, suites)
    if cost:
        if factor or paper or reruns or published or ranks or versus is not None or ci is not None:
            raise UsageError("--cost tabulates the records' timings and memory: not with "
                             "--ablation, --paper, --reruns, --ranks, --versus or --ci")
        summary = Store(settings.results_root).summary(list(suites) or None)
        costs = cost_tables(summary, list(datasets) or None, digits)
        if not costs:
            raise UsageError("no successful records to cost"
                             + (f" for {', '.join(datasets)}" if datasets else ""))
        write_or_echo(settings, render_stats(costs, fmt), output)
        return
    check_metric(df, metric)
    if factor and (paper or reruns or published):
        raise UsageError("--paper/--reruns/--published apply to method tables, not to "
                         "--ablation")
    names = list(datasets) or sorted(df["dataset"].unique())
    if ranks or versus is not None:
        if factor or paper or reruns or published or ci is not None:
            raise UsageError("--ranks/--versus compare the columns of method tables: not with "
                             "--ablation, --paper, --reruns, --published or --ci")
        stat_tables = statistics(df, metric, names, ranks, versus, drop_incomplete, digits,
                                 task_orders(settings, names), allow_unequal_seeds)
        write_or_echo(settings, render_stats(stat_tables, fmt), output)
        return
    if drop_incomplete:
        raise UsageError("--drop-incomplete applies to --ranks and --versus")
    if ci is not None and (factor or metric != "image_auroc"):
        raise UsageError("--ci is an interval of the image AUROC of method tables: use it with "
                         "--metric image_auroc and without --ablation")
    kinds = [k for k, on in (("paper", paper), ("rerun", reruns), ("baseline", published)) if on]
    reference = load_reference(settings.results_root) if kinds else None
    tables = build_tables(df, metric, datasets=names,
                          task_orders=task_orders(settings, names),
                          ablation=factor, reference=reference, kinds=kinds,
                          allow_unequal_seeds=allow_unequal_seeds)
    if not tables:
        if factor:
            found = ablation_factors(df[df["dataset"].isin(names)])
            raise UsageError(f"no records vary {factor!r} for {', '.join(names)}; factors "
                             f"varied in these records: {', '.join(found) or 'none'}")
        raise UsageError(f"no successful records with {metric} for {', '.join(names)}")
    if ci is not None:
        tables = with_auroc_intervals(Store(settings.results_root), df, tables, ci)
    write_or_echo(settings, render(tables, fmt, digits), output)


def statistics(df: pd.DataFrame, metric: str, names: list[str], ranks: bool,
               versus: str | None, drop_incomplete: bool, digits: int,
               orders: dict[str, list[str]], allow_unequal_seeds: bool = False
               ) -> list[StatTable]:
    """The ranks table and/or the comparisons against ``versus``, per dataset and over all."""
    mats = stats.matrices(df, metric, names, orders, drop_incomplete, allow_unequal_seeds)
    out = [ranks_table(mats)] if ranks else []
    return out + (versus_tables(mats, versus, digits) if versus is not None else [])
