"""From records to named figures: the selection shared by ``bench plot`` and ``bench report``.

Each function returns ``[(name, Figure)]``; ``name`` is a file stem (no folder, no suffix) that
the CLI turns into ``results/figures/<suite>/<name>.png``. Nothing here writes files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.core.errors import UsageError
from bench.records.key import variant_label
from bench.records.record import Record
from bench.records.store import Store
from bench.report import plots, stats
from bench.report.aggregate import (
    MEAN_ROW,
    ablation_tables,
    build_tables,
    column_label,
    corruption_tables,
    dataset_summary,
    method_table,
)

Named = list[tuple[str, Figure]]


def _stem(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def bars(df: pd.DataFrame, metric: str, task_orders: dict[str, list[str]],
         reference: pd.DataFrame | None = None) -> Named:
    tables = build_tables(df, metric, task_orders=task_orders, reference=reference)
    return [(_stem("bars", t.dataset, metric, None if t.setting == "one-class" else t.setting),
             plots.task_bars(t)) for t in tables]


def corruptions(cdf: pd.DataFrame, metric: str, datasets: Sequence[str] = ()) -> Named:
    """The corrupted setting: the metric against severity, one figure per dataset and method
    (``cdf``: :meth:`~bench.records.store.Store.load_corruptions`)."""
    return [(_stem("corruptions", t.dataset, metric, t.title.rsplit("(", 1)[-1].rstrip(")")),
             plots.severity_lines(t))
            for t in corruption_tables(cdf, metric, list(datasets) or None)]


def heatmap(df: pd.DataFrame, metric: str, task_orders: dict[str, list[str]]) -> Named:
    tables = [method_table(df, d, metric, task_orders.get(d))
              for d in sorted(df["dataset"].dropna().unique())]
    summary = dataset_summary([t for t in tables if not t.empty])
    if summary.empty:
        return []
    return [(_stem("heatmap", metric), plots.method_heatmap(summary, metric))]


def ablation(df: pd.DataFrame, metric: str, factor: str,
             task_orders: dict[str, list[str]]) -> Named:
    tables = [t for d in sorted(df["dataset"].dropna().unique())
              for t in ablation_tables(df, d, metric, factor, task_orders.get(d))]
    tables = [t for t in tables  # one level compares nothing; nor does an all-missing Mean
              if len(t.columns) > 1 and not t.mean.loc[MEAN_ROW].isna().all()]
    if not tables:
        return []
    return [(_stem("ablation", factor, metric), plots.ablation_lines(tables, factor))]


def curves(store: Store, suites: Sequence[str] | None, metric: str,
           datasets: Sequence[str] = ()) -> Named:
    hist = store.load_history(list(suites) if suites else None)
    hist = hist[hist["metric"] == metric]
    if datasets:
        hist = hist[hist["dataset"].isin(datasets)]
    if hist.empty:
        return []
    hist = hist.assign(column=[column_label(m, v) for m, v in zip(hist["method"],
                                                                  hist["variant"], strict=True)])
    out = []
    for dataset, h in hist.groupby("dataset"):
        # one line per (task, column): seeds are averaged
        h = h.groupby(["column", "task", "epoch"], as_index=False)["value"].mean()
        out.append((_stem("curves", dataset, metric),
                    plots.training_curves(h.assign(metric=metric), metric, str(dataset))))
    return out


def cd(df: pd.DataFrame, metric: str, datasets: Sequence[str],
       task_orders: dict[str, list[str]], test: str = "nemenyi",
       drop_incomplete: bool = False,
       allow_unequal_seeds: bool = False) -> tuple[Named, list[str]]:
    """Critical-difference diagrams per dataset and over all of them, and why a scope has none.

    Refuses (UsageError) a missing cell in any scope, like the statistics tables; a scope too
    small for the test is skipped, with the reason returned. Where the Friedman test is not
    significant at α, no post-hoc test runs: one bar joins every column and the title says why.
    """
    named: Named = []
    skipped: list[str] = []
    for m in stats.matrices(df, metric, datasets, task_orders, drop_incomplete,
                            allow_unequal_seeds):
        try:
            fr = stats.friedman(m)
            p = stats.posthoc(m, test) if fr.significant else _all_joined(m.columns)
        except UsageError as exc:
            skipped.append(f"{m.scope}: {exc}")
            continue
        ranks = stats.average_ranks(m)
        if not fr.significant:
            line = (f"nothing: the Friedman test is not significant at α = {stats.ALPHA}, so "
                    "no post-hoc test was run and one bar joins every column")
        elif test == "nemenyi":
            line = (f"Nemenyi at α = {stats.ALPHA} (critical difference "
                    f"{stats.critical_difference(fr.n_methods, fr.n_tasks):.2f})")
        else:
            line = f"pairwise Wilcoxon signed-rank, Holm-corrected, α = {stats.ALPHA}"
        title = (f"{m.scope} — {metric}: average rank over {m.n_tasks} tasks "
                 f"(seeds {','.join(m.seeds)} averaged per task); Friedman p = "
                 f"{fr.pvalue:.3g}, Iman–Davenport p = {fr.f_pvalue:.3g}; bars join columns "
                 f"not significantly different by {line}")
        if m.dropped:
            title += f"; {len(m.dropped)} task(s) dropped for a missing cell"
        scope = "all" if m.scope == stats.ALL else m.scope
        named.append((_stem("cd", scope, metric, "" if test == "nemenyi" else test),
                      plots.cd_diagram(ranks, p, title)))
    return named, skipped


def _all_joined(columns: Sequence[str]) -> pd.DataFrame:
    """Post-hoc p-values of 1 for every pair: the diagram then joins every column."""
    return pd.DataFrame(1.0, index=list(columns), columns=list(columns))


@dataclass(frozen=True)
class JobFilter:
    """Which records a job-level figure (ROC, overlays) is about."""

    suites: tuple[str, ...] = ()
    job_id: str | None = None
    method: str | None = None
    dataset: str | None = None
    task: str | None = None
    seed: int | None = None

    def matches(self, rec: Record) -> bool:
        job = rec.job
        return (rec.ok
                and (self.job_id is None or rec.id == self.job_id)
                and (self.method is None or job.method == self.method)
                and (self.dataset is None or job.dataset == self.dataset)
                and (self.task is None or job.task == self.task)
                and (self.seed is None or job.seed == self.seed))


def _label(rec: Record, with_seed: bool) -> str:
    job = rec.job
    name = column_label(job.method, variant_label(job.overrides_dict))
    if job.setting != "one-class":
        name += f" ({job.setting_label})"
    return f"{name} s{job.seed}" if with_seed else name


def _matching(store: Store, flt: JobFilter) -> list[Record]:
    recs = [r for r in store.records(list(flt.suites) or None) if flt.matches(r)]
    return [r for r in recs if (r.artifacts or {}).get("scores")]


def roc(store: Store, flt: JobFilter) -> Named:
    """ROC curves of the matching jobs (one dataset and task), one curve per job."""
    recs = _matching(store, flt)
    if not recs:
        raise UsageError("no successful job with saved scores matches (jobs recorded before "
                         "per-job artifacts existed have none: delete their records and rerun)")
    where = sorted({(r.job.dataset, r.job.task) for r in recs})
    if len(where) > 1:
        shown = ", ".join(f"{d}/{t}" for d, t in where[:8])
        raise UsageError(f"ROC curves compare jobs of one task; matching tasks: {shown}; "
                         "narrow with --dataset and --task")
    with_seed = len({r.job.seed for r in recs}) > 1
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for r in sorted(recs, key=lambda r: (_label(r, with_seed), r.id)):
        art = store.read_artifacts(r.job.suite, r.id)
        if art is not None and len(np.unique(art.labels)) == 2:
            found[_label(r, with_seed)] = (art.labels, art.scores)
    if not found:
        return []
    dataset, task = where[0]
    return [(_stem("roc", dataset, task), plots.roc_curves(found, f"ROC — {dataset} / {task}"))]


def overlay(store: Store, flt: JobFilter) -> Named:
    """Localization overlays of exactly one job."""
    recs = [r for r in _matching(store, flt) if (r.artifacts or {}).get("maps")]
    if not recs:
        raise UsageError("no successful job with saved anomaly maps matches (only methods that "
                         "localize save maps)")
    if len(recs) > 1:
        shown = "; ".join(f"{r.id} {_label(r, True)} {r.job.dataset}/{r.job.task}"
                          for r in recs[:6])
        raise UsageError(f"{len(recs)} jobs match, overlays show one: {shown}"
                         + ("; ..." if len(recs) > 6 else "") + "; narrow it or pass --job ID")
    rec = recs[0]
    art = store.read_artifacts(rec.job.suite, rec.id)
    if art is None or art.maps is None:
        raise UsageError(f"the artifacts of job {rec.id} are missing or unreadable")
    job = rec.job
    title = f"{_label(rec, True)} — {job.dataset}/{job.task} (job {rec.id})"
    return [(_stem("overlays", job.dataset, job.task, rec.id),
             plots.overlays(art, title))]
