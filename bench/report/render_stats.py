"""Renderers of :class:`~bench.report.stat_tables.StatTable`: Markdown, LaTeX (booktabs), CSV
and HTML, in the same styles as the score tables of :mod:`bench.report.render`."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence

import pandas as pd

from bench.report.render import html_table, latex_escape
from bench.report.stat_tables import StatTable


def _cells(t: StatTable, bold: Callable[[str], str], escape: Callable[[str], str]) -> pd.DataFrame:
    out = t.cells.map(lambda v: escape(str(v)))
    if t.bold is not None:
        for r in t.cells.index:
            for c in t.cells.columns:
                if t.bold.at[r, c]:
                    out.at[r, c] = bold(out.at[r, c])
    return out


def stats_markdown(tables: Sequence[StatTable]) -> str:
    chunks = []
    for t in tables:
        cells = _cells(t, lambda s: f"**{s}**", lambda s: s)
        cells.index.name = t.corner
        md = cells.to_markdown(disable_numparse=True)
        chunks.append(f"### {t.title}\n\n{md}\n\n*{t.caption.replace('*', chr(92) + '*')}*\n")
    return "\n".join(chunks)


def stats_latex(tables: Sequence[StatTable]) -> str:
    """One booktabs ``table`` per statistic; needs ``\\usepackage{booktabs}``."""
    chunks = []
    for t in tables:
        cells = _cells(t, lambda s: rf"\textbf{{{s}}}", latex_escape)
        label = re.sub(r"[^A-Za-z0-9]+", "-", t.title).strip("-").lower()
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 rf"\caption{{{latex_escape(t.caption)}}}", rf"\label{{tab:{label}}}",
                 rf"\begin{{tabular}}{{l{'c' * len(cells.columns)}}}", r"\toprule",
                 " & ".join(latex_escape(str(c)) for c in [t.corner, *cells.columns]) + r" \\",
                 r"\midrule"]
        for r in cells.index:
            if t.summary_rows and r == t.summary_rows[0]:
                lines.append(r"\midrule")
            lines.append(" & ".join([latex_escape(str(r)), *cells.loc[r]]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        chunks.append("\n".join(lines))
    return "\n".join(chunks)


def stats_html(tables: Sequence[StatTable]) -> str:
    chunks = []
    for t in tables:
        cells = _cells(t, lambda s: f"<b>{s}</b>", html.escape)
        chunks.append(html_table(t.title, t.caption, t.corner, cells,
                                 t.summary_rows[0] if t.summary_rows else None))
    return "\n".join(chunks)


def stats_csv(tables: Sequence[StatTable]) -> str:
    """Long CSV, one row per (table, scope, column); ranks and comparisons share one file, each
    row filling the fields of its kind (``table``: ranks or versus)."""
    frames = [t.data for t in tables if not t.data.empty]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    first = [c for c in ("table", "scope", "metric", "reference", "column") if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first and c != "caption"]
            + (["caption"] if "caption" in df.columns else [])]
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.6g")
    return buf.getvalue()


RENDERERS = {"markdown": stats_markdown, "latex": stats_latex, "html": stats_html,
             "csv": stats_csv}


def render_stats(tables: Sequence[StatTable], fmt: str) -> str:
    return RENDERERS[fmt](tables)
