"""``bench table``: paper-style tables and ablations from the records."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from bench.cli._common import Settings, reads_results, suite_names
from bench.cli._types import SETTING, number, shots_list
from bench.core.errors import BenchError, UsageError
from bench.records.store import Store
from bench.report import stats
from bench.report.aggregate import (
    ablation_factors,
    build_tables,
    corruption_tables,
    in_setting,
    setting_groups,
    without_pooled,
)
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


def select_settings(df: pd.DataFrame, settings_: tuple[str, ...], shots: str | None
                    ) -> pd.DataFrame:
    """The rows of the settings asked for (all without ``--setting``), of k in ``--shots``."""
    if not settings_ and not shots:
        return df
    ks = shots_list(shots)
    keep = pd.Series(False, index=df.index)
    for name in settings_ or ("few-shot",):
        if name == "few-shot" and ks:
            for k in ks:
                keep |= in_setting(df, name, k)
        else:
            keep |= in_setting(df, name)
    if not keep.any():
        have = ", ".join(f"{s} k={k}" if k else s for s, k in setting_groups(df))
        asked = ", ".join(settings_ or ("few-shot",)) + (f" (k {shots})" if ks else "")
        raise UsageError(f"no records of setting {asked}; these records have: {have}")
    return df[keep]


def one_setting(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """``df`` if its records are of one setting (and k), without unified pooled rows; else a
    one-line error: ``what`` compares columns over tasks, within one setting."""
    groups = setting_groups(df)
    if len(groups) > 1:
        have = ", ".join(f"{s} k={k}" if k else s for s, k in groups)
        raise UsageError(f"{what} compares columns within one setting; these records have "
                         f"{have}: choose one with --setting (and --shots)")
    return without_pooled(df)


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
@click.option("--setting", "settings_", multiple=True, type=SETTING,
              help="Only records of this setting (repeatable; default: every setting, one "
                   "table per dataset and setting). See docs/settings.md.")
@click.option("--shots", default=None, metavar="K,...",
              help="Only few-shot records of these k, e.g. 1,4.")
@click.option("--corruptions", is_flag=True,
              help="The corrupted setting's tables: rows = corruptions, columns = severities "
                   "(clean, 1-5), one table per dataset and method; --metric image_auroc, "
                   "image_ap or image_f1_at_train_quantile.")
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
          settings_: tuple[str, ...], shots: str | None, corruptions: bool, fmt: str,
          digits: int, paper: bool, reruns: bool, published: bool,
          factor: str | None, cost: bool, ranks: bool,
          versus: str | None, drop_incomplete: bool, ci: float | None,
          allow_unequal_seeds: bool, output: str | None) -> None:
    """One table per dataset (and setting): tasks as rows (plus a recomputed Mean; a unified
    table's Pooled row), methods as columns."""
    df = select_settings(load_records(settings, suites), settings_, shots)
    if corruptions:
        if factor or paper or reruns or published or ranks or versus is not None or ci is not None \
                or cost:
            raise UsageError("--corruptions tabulates the corrupted setting by severity: not "
                             "with --ablation, --paper, --reruns, --published, --ranks, "
                             "--versus, --ci or --cost")
        cdf = Store(settings.results_root).load_corruptions(list(suites) or None)
        tables = corruption_tables(cdf[cdf["id"].isin(set(df["id"]))], metric,
                                   list(datasets) or None)
        if not tables:
            known = sorted(cdf["metric"].dropna().unique())
            raise UsageError(f"no corrupted-setting records with {metric}"
                             + (f" for {', '.join(datasets)}" if datasets else "")
                             + (f"; their metrics: {', '.join(known)}" if known else
                                "; run bench run --setting corrupted first"))
        write_or_echo(settings, render(tables, fmt, digits), output)
        return
    if cost:
        if factor or paper or reruns or published or ranks or versus is not None or ci is not None:
            raise UsageError("--cost tabulates the records' timings and memory: not with "
                             "--ablation, --paper, --reruns, --ranks, --versus or --ci")
        summary = Store(settings.results_root).summary(list(suites) or None)
        summary = summary[summary["id"].isin(set(df["id"]))]  # the settings asked for
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
        df = one_setting(df, "--ranks/--versus")
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
        one_setting(df, "--ci")
        if (df["setting"] == "unified").any():
            raise UsageError("--ci bootstraps a job's test scores per task: not for unified "
                             "records (one job's scores cover every category)")
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
