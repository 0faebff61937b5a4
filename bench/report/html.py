"""``bench report``: one self-contained HTML page with a suite's tables and figures.

Figures are embedded as base64 PNG and the style sheet is inline, so the page has no external
reference at all (no ``src=http``, no ``<link>``, no script) and can be mailed or archived as one
file. The page holds: a summary of the records (counts, versions, commits), every metric's tables
(with published columns where they exist), per-task bars, a method × dataset heatmap, a Statistics
section (average ranks with the Friedman test, critical-difference diagrams, paired comparisons
against a reference column that the caller names), one table and plot per ablated config field,
training curves, ROC curves and localization overlays of one task per dataset. Building returns a
string; only the CLI writes it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from bench.core.errors import UsageError
from bench.core.metrics import METRIC_NAMES, uses_method_maps
from bench.records.record import Record
from bench.records.store import Store
from bench.report import figures, stats
from bench.report.aggregate import (
    ablation_factors,
    ablation_tables,
    build_tables,
    corruption_tables,
    in_setting,
    setting_column,
    setting_groups,
    without_pooled,
)
from bench.report.cost import cost_tables
from bench.report.render import to_html
from bench.report.render_stats import stats_html
from bench.report.stat_tables import ranks_table, versus_tables

METRICS = METRIC_NAMES
#: the AUROCs (image, pixel, and the pixel protocols that take a method's own maps) get bars
BAR_METRICS = tuple(m for m in METRICS if "_auroc" in m and not m.endswith("_model_res"))

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table.bench-table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
table.bench-table th, table.bench-table td { padding: 0.2em 0.7em; text-align: center; }
table.bench-table thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; }
table.bench-table tbody tr:last-child th, table.bench-table tbody tr:last-child td {
  border-bottom: 2px solid #222; }
table.bench-table tr.mean th, table.bench-table tr.mean td { border-top: 1px solid #222; }
table.bench-table tbody th { text-align: left; font-weight: normal; }
table.bench-table caption { caption-side: bottom; text-align: left; font-size: 0.85em;
  color: #555; padding-top: 0.4em; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.bench-table caption { max-width: 60em; }
figure { margin: 1em 0; overflow-x: auto; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
.meta td { padding: 0.1em 1em 0.1em 0; }
"""


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _img(name: str, fig: Figure, dpi: int) -> str:
    data = base64.b64encode(figure_png(fig, dpi)).decode("ascii")
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


@dataclass
class _Page:
    dpi: int
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figures(self, named: figures.Named) -> None:
        for name, fig in named:
            self.parts.append(_img(name, fig, self.dpi))


def _meta(store: Store, suite: str, df: pd.DataFrame) -> str:
    recs = store.records(suite)
    ok = sum(r.ok for r in recs)
    versions = sorted({", ".join(f"{k} {v}" for k, v in sorted(r.versions.items())
                                 if k in ("bench", "torch", "python")) for r in recs})
    gits = sorted({str(r.git) for r in recs})
    created = sorted(r.created for r in recs if r.created)
    rows = [("records", f"{len(recs)} ({ok} ok, {len(recs) - ok} failed)"),
            ("methods", ", ".join(sorted(df["method"].unique()))),
            ("datasets", ", ".join(sorted(df["dataset"].unique()))),
            ("seeds", ", ".join(str(s) for s in sorted(df["seed"].unique()))),
            ("finished", f"{created[0]} … {created[-1]}" if created else "–"),
            ("versions", "; ".join(versions) or "–"), ("git", ", ".join(gits) or "–")]
    return '<table class="meta">' + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows
    ) + "</table>"


def build_report(store: Store, suite: str, *, task_orders: dict[str, list[str]],
                 reference: pd.DataFrame | None = None, metrics: Sequence[str] = METRICS,
                 dpi: int = 90, versus: str | None = None,
                 settings: Sequence[str] = ()) -> str:
    """The whole page for ``suite`` as one HTML string; ``versus`` names the column the
    Statistics section compares the others with (none: no paired comparisons); ``settings``
    keeps the records of those settings only (default: all, each setting's tables apart)."""
    df = store.load(suite)
    if settings:
        df = df[setting_column(df).isin(list(settings))]
    if df.empty:
        raise UsageError(f"no records for suite {suite!r}"
                         + (f" in setting {', '.join(settings)}" if settings else "")
                         + f" under {store.root / 'runs'}")
    page = _Page(dpi)
    page.add(f"<h1>bench report: suite {html.escape(suite)}</h1>")
    page.add(_meta(store, suite, df))
    present = [m for m in metrics if (df["metric"] == m).any() and df.loc[
        df["metric"] == m, "value"].notna().any()]
    factors = ablation_factors(df[df["status"] == "ok"])
    for metric in present:
        tables = build_tables(df, metric, task_orders=task_orders, reference=reference,
                              kinds=("paper", "rerun"))
        if not tables:
            continue
        page.heading(f"Tables: {metric}")
        page.add(to_html(tables))
        if metric in BAR_METRICS:
            page.figures(figures.bars(df, metric, task_orders, reference))
        if metric == "image_auroc":
            page.figures(figures.heatmap(df, metric, task_orders))
    cdf = store.load_corruptions(suite)
    cdf = cdf[cdf["id"].isin(set(df["id"]))]
    if not cdf.empty:
        page.heading("Corruptions (corrupted setting)")
        page.add(to_html(corruption_tables(cdf, "image_auroc")))
        page.figures(figures.corruptions(cdf, "image_auroc"))
    if present:
        # ranks compare the columns of one setting: the first the records have
        setting, shots = setting_groups(df)[0]
        stat_df = without_pooled(df[in_setting(df, setting, shots)])
        _statistics(page, stat_df, present[0], task_orders, versus)
    for factor in factors:
        for metric in present[:1] + [m for m in present[1:] if m in BAR_METRICS]:
            # a table of one level compares nothing: left out (and its factor with it)
            tables = [t for d in sorted(df["dataset"].unique())
                      for t in ablation_tables(df, d, metric, factor, task_orders.get(d))
                      if len(t.columns) > 1]
            if not tables:
                continue
            page.heading(f"Ablation: {factor} ({metric})")
            page.add(to_html(tables))
            page.figures(figures.ablation(df, metric, factor, task_orders))
    history = figures.curves(store, [suite], "image_auroc")
    if history:
        page.heading("Training curves")
        page.figures(history)
    cost = cost_tables(store.summary(suite))
    if cost:
        page.heading("Cost")
        page.add(stats_html(cost))
    _job_figures(page, store, suite, df, task_orders)
    body = "\n".join(page.parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>bench report: {html.escape(suite)}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def _statistics(page: _Page, df: pd.DataFrame, metric: str,
                task_orders: dict[str, list[str]], versus: str | None) -> None:
    """Average ranks, critical-difference diagrams and comparisons against ``versus``; a
    statistic that cannot be computed honestly says why instead."""
    page.heading(f"Statistics: {metric}")
    ok = df[(df["status"] == "ok") & (df["metric"] == metric)]
    datasets = sorted(ok["dataset"].dropna().unique())
    try:
        mats = stats.matrices(df, metric, datasets, task_orders)
    except UsageError as exc:
        page.add(_note(f"Not computed: {exc}."))
        return
    page.add(stats_html([ranks_table(mats)]))
    named, skipped = figures.cd(df, metric, datasets, task_orders)
    page.figures(named)
    for line in skipped:
        page.add(_note(f"No critical-difference diagram for {line}."))
    if versus is None:
        page.add(_note("No paired comparisons: no reference column was named."))
        return
    try:
        page.add(stats_html(versus_tables(mats, versus)))
    except UsageError as exc:
        page.add(_note(f"No paired comparisons against {versus}: {exc}."))


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _job_figures(page: _Page, store: Store, suite: str, df: pd.DataFrame,
                 task_orders: dict[str, list[str]]) -> None:
    """ROC curves for the first task of each dataset; overlays for one localizing job."""
    ok = df[(df["status"] == "ok") & (df["seed"] == df["seed"].min())]
    done_heading = False
    for dataset in sorted(ok["dataset"].unique()):
        tasks = list(ok.loc[ok["dataset"] == dataset, "task"].unique())
        order = task_orders.get(dataset) or sorted(tasks)
        task = next((t for t in order if t in tasks), tasks[0])
        flt = figures.JobFilter(suites=(suite,), dataset=dataset, task=task,
                                seed=int(ok["seed"].min()))
        try:
            named = figures.roc(store, flt)
        except UsageError:
            continue  # records without saved scores
        if not done_heading:
            page.heading("ROC curves and localization (first task of each dataset)")
            done_heading = True
        page.figures(named)
        localizing = localizing_ids(r for r in store.records(suite) if flt.matches(r))
        if localizing:
            page.figures(figures.overlay(store, figures.JobFilter(
                suites=(suite,), job_id=localizing[0])))


def localizing_ids(records: Iterable[Record]) -> list[str]:
    """Ids of the records with saved maps, in the order their overlays are worth showing: first
    the methods that make maps of their own for a metric's protocol (the method this project
    reproduces declares such maps), then any other localizer; by id within each."""
    return [r.id for r in sorted(
        (r for r in records if (r.artifacts or {}).get("maps")),
        key=lambda r: (not uses_method_maps(r.pixel_protocol), r.id))]
