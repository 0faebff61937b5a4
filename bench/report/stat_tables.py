"""Statistics as tables: average ranks (with Friedman and Nemenyi per scope) and paired
comparisons against one column. Pure: matrices in (:mod:`bench.report.stats`), text cells and a
caption out; :mod:`bench.report.render_stats` writes them as Markdown, LaTeX, CSV or HTML.

Each caption says what the statistic was computed over (scope, tasks, columns, seeds, metric,
suite), which library computed it, and why a cell is empty where a test was not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.core.errors import UsageError
from bench.report.render import MISSING, describe_metric
from bench.report.stats import (
    ALPHA,
    MIN_WILCOXON_PAIRS,
    Matrix,
    average_ranks,
    check_wilcoxon,
    critical_difference,
    describe,
    friedman,
    resolve_column,
    versus,
)

TASKS_ROW = "tasks"
FRIEDMAN_ROW = "Friedman p"
IMAN_DAVENPORT_ROW = "Iman–Davenport p"
CD_ROW = f"Nemenyi CD (α = {ALPHA})"


@dataclass
class StatTable:
    """Text cells with a caption; ``data`` holds the same numbers, long, for CSV."""

    title: str
    cells: pd.DataFrame
    caption: str
    data: pd.DataFrame
    corner: str = ""
    bold: pd.DataFrame | None = None
    #: rows that begin a block of summary rows (a rule is drawn above the first)
    summary_rows: list[str] = field(default_factory=list)


def format_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def describe_seeds(mats: Sequence[Matrix]) -> str:
    """``1–3`` when the cells of ``mats`` rest on unequal seed counts, else empty."""
    lo = min(m.seeds_per_cell[0] for m in mats)
    hi = max(m.seeds_per_cell[1] for m in mats)
    return f"{lo}–{hi}" if lo != hi else ""


def ranks_table(mats: Sequence[Matrix], digits: int = 2) -> StatTable:
    """Rows = columns, one column per scope: the average rank over the scope's tasks; below them
    the scope's task count, Friedman and Iman–Davenport p-values and Nemenyi's critical
    difference (– where the test is refused, with the reason in the caption)."""
    metric = mats[0].metric
    ranks = {m.scope: average_ranks(m) for m in mats}
    last = ranks[mats[-1].scope]
    names = sorted({c for m in mats for c in m.columns},
                   key=lambda c: (last.get(c, np.inf), c))
    scopes = [m.scope for m in mats]
    cells = pd.DataFrame(MISSING, index=[*names, TASKS_ROW, FRIEDMAN_ROW, IMAN_DAVENPORT_ROW,
                                         CD_ROW], columns=scopes, dtype=object)
    bold = pd.DataFrame(False, index=cells.index, columns=scopes)
    reasons, rough, rows = [], [], []
    for m in mats:
        r = ranks[m.scope]
        for c, v in r.items():
            cells.at[c, m.scope] = f"{v:.{digits}f}"
        bold.loc[[c for c in r.index if np.isclose(r[c], r.min())], m.scope] = True
        cells.at[TASKS_ROW, m.scope] = str(m.n_tasks)
        test: dict[str, float] = dict.fromkeys(["friedman_chi2", "friedman_p", "iman_davenport_f",
                                                "iman_davenport_p", "nemenyi_cd"], np.nan)
        try:
            f = friedman(m)
        except UsageError as exc:
            reasons.append(f"{m.scope}: no Friedman test ({exc})")
        else:
            cd = critical_difference(f.n_methods, f.n_tasks)
            test = {"friedman_chi2": f.statistic, "friedman_p": f.pvalue,
                    "iman_davenport_f": f.f_statistic, "iman_davenport_p": f.f_pvalue,
                    "nemenyi_cd": cd}
            cells.at[FRIEDMAN_ROW, m.scope] = format_p(f.pvalue)
            cells.at[IMAN_DAVENPORT_ROW, m.scope] = format_p(f.f_pvalue)
            cells.at[CD_ROW, m.scope] = f"{cd:.{digits}f}" if f.significant else "n.s."
            test["friedman_significant"] = f.significant
            if not f.significant:
                reasons.append(f.not_significant_text(m.scope))
            if f.rough:
                rough.append(m.scope)
        for c, v in r.items():
            rows.append({"table": "ranks", "scope": m.scope, "metric": metric, "column": c,
                         "average_rank": v, "n_tasks": m.n_tasks, "n_columns": len(m.columns),
                         **test})
    caption = "; ".join([
        f"Average rank over tasks, {describe_metric(metric)} (rank 1 = highest value on a task, "
        "ties share their average rank; lowest average rank per scope in bold; – = column not "
        "in that scope)",
        f"computed over {describe(mats)}",
        "Friedman test of equal ranks (scipy.stats.friedmanchisquare, χ² with tie correction) "
        "and its Iman–Davenport F (Demšar 2006)",
        f"Nemenyi critical difference CD at α = {ALPHA} (studentized range, scipy): two average "
        "ranks of a scope closer than CD are not significantly different (diagram: bench plot "
        "cd); n.s. = the Friedman test is not significant at that α, so there is no "
        "critical difference to read",
        *([f"cells rest on {describe_seeds(mats)} seeds, shown as asked "
           "(--allow-unequal-seeds): tasks of unequal precision weigh alike"]
          if describe_seeds(mats) else []),
        *reasons,
        *([f"{', '.join(rough)}: outside Demšar's rule of thumb for the χ² approximation "
           "(N > 10 tasks, k > 5 columns); read the Iman–Davenport p"] if rough else []),
    ]) + "."
    data = pd.DataFrame(rows).assign(caption=caption)
    return StatTable(title=f"Average ranks — {metric}", cells=cells, caption=caption, data=data,
                     corner="column", bold=bold, summary_rows=[TASKS_ROW])


def versus_tables(mats: Sequence[Matrix], reference: str, digits: int = 1) -> list[StatTable]:
    """One table per scope that holds ``reference``: every other column against it, paired over
    the scope's tasks. Refuses when no scope holds the reference, or none has enough tasks."""
    out, skipped, untested = [], [], []
    for m in mats:
        try:
            ref = resolve_column(m, reference)
        except UsageError as exc:
            skipped.append(str(exc))
            continue
        cmp = versus(m, ref)
        try:
            check_wilcoxon(m)
        except UsageError as exc:
            untested.append(str(exc))
        out.append(_versus_table(m, ref, cmp, digits))
    if not out:
        raise UsageError(skipped[0])
    if len(untested) == len(out):
        raise UsageError(untested[0])
    if skipped:  # say which scopes have no comparison, rather than leave them out silently
        note = "no comparison elsewhere: " + "; ".join(skipped)
        for t in out:
            t.caption = t.caption[:-1] + f"; {note}."
            t.data = t.data.assign(caption=t.caption)
    return out


def _versus_table(m: Matrix, ref: str, cmp: pd.DataFrame, digits: int) -> StatTable:
    heads = ["tasks", "median Δ (pp)", "wins/ties/losses", "T", "p", "p (Holm)"]
    cells = pd.DataFrame(MISSING, index=list(cmp["column"]), columns=heads, dtype=object)
    bold = pd.DataFrame(False, index=cells.index, columns=heads)
    for _, r in cmp.iterrows():
        c = r["column"]
        cells.loc[c, heads] = [str(r["n_tasks"]), _signed(100 * r["median_delta"], digits),
                               f"{r['wins']}/{r['ties']}/{r['losses']}",
                               MISSING if np.isnan(r["statistic"]) else f"{r['statistic']:g}",
                               format_p(r["pvalue"]), format_p(r["pvalue_holm"])]
        bold.at[c, "p (Holm)"] = bool(r["pvalue_holm"] < ALPHA)
    tested = int(cmp["pvalue"].notna().sum())
    parts = [
        f"{m.scope} — {describe_metric(m.metric)}: each column against {ref}, paired over "
        f"tasks (a task's cell is the mean over its seeds, so tasks, not seeds, are the pairs)",
        f"computed over {m.describe()}",
        f"median Δ = column − {ref} over the tasks, in percentage points; wins/ties/losses = "
        f"tasks where the column is above / equal to / below {ref}",
    ]
    if tested:
        parts.append("two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero "
                     "differences split between the signs; T = the smaller signed-rank sum), "
                     f"p (Holm) corrected over the {tested} comparisons of this table "
                     f"(statsmodels multipletests, Holm); p (Holm) < {ALPHA} in bold")
    else:
        parts.append(f"no Wilcoxon test: {m.n_tasks} tasks, fewer than the "
                     f"{MIN_WILCOXON_PAIRS} pairs it needs to ever reach p < 0.05")
    caption = "; ".join(parts) + "."
    data = cmp.assign(table="versus", scope=m.scope, metric=m.metric, reference=ref,
                      caption=caption)
    return StatTable(title=f"{m.scope} — {m.metric}: against {ref}", cells=cells,
                     caption=caption, data=data, corner="column", bold=bold)
