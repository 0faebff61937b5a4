"""Renderers: :class:`~bench.aggregate.Table` to Markdown, LaTeX (booktabs), CSV and HTML.

Numbers are AUROC-style fractions shown as percentages with ``digits`` decimals; the best value
of each row is bold; mean ± std is shown when a cell has more than one seed; a missing cell is
shown as ``–`` (never as a blank that could be mistaken for a zero).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd

from bench.aggregate import Table, best_per_row, is_missing

MISSING = "–"


def caption(table: Table, extra: str = "") -> str:
    p = table.provenance
    parts = [f"{table.dataset}: {table.metric} (%)"]
    if p.get("expert"):
        parts.append("expert " + ", ".join(p["expert"]))
    if p.get("checkpoint_policy"):
        parts.append("checkpoint " + ", ".join(p["checkpoint_policy"]))
    if p.get("pixel_resolution") and table.metric.startswith("pixel"):
        parts.append("pixel metric at " + ", ".join(p["pixel_resolution"]) + " px")
    if p.get("seeds"):
        parts.append("seeds " + ",".join(p["seeds"]))
    if p.get("suite"):
        parts.append("suite " + ", ".join(p["suite"]))
    if extra:
        parts.append(extra)
    return "; ".join(parts) + "."


def _cells(table: Table, digits: int, bold: tuple[str, str]) -> pd.DataFrame:
    best = best_per_row(table)
    out = pd.DataFrame(index=table.mean.index, columns=table.mean.columns, dtype=object)
    for r in table.mean.index:
        for c in table.mean.columns:
            v = table.mean.at[r, c]
            if is_missing(v):
                out.at[r, c] = MISSING
                continue
            text = f"{100 * v:.{digits}f}"
            n = table.n_seeds.at[r, c] if c in table.n_seeds.columns else 1
            s = table.std.at[r, c] if c in table.std.columns else float("nan")
            if not is_missing(n) and n > 1 and not is_missing(s):
                text += f" ± {100 * s:.{digits}f}"
            if best.at[r, c]:
                text = f"{bold[0]}{text}{bold[1]}"
            out.at[r, c] = text
    out.index.name = "task"
    return out


def to_markdown(tables: Sequence[Table], digits: int = 1) -> str:
    chunks = []
    for t in tables:
        if t.mean.empty:
            continue
        cells = _cells(t, digits, ("**", "**"))
        md = cells.to_markdown(disable_numparse=True)
        chunks.append(f"### {t.dataset} — {t.metric}\n\n{md}\n\n*{caption(t)}*\n")
    return "\n".join(chunks)


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(a, b)
    return text


def to_latex(tables: Sequence[Table], digits: int = 1) -> str:
    """One booktabs ``table`` environment per dataset; needs ``\\usepackage{booktabs}``."""
    chunks = []
    for t in tables:
        if t.mean.empty:
            continue
        cells = _cells(t, digits, (r"\textbf{", "}"))
        cells = cells.map(lambda s: s.replace("±", r"$\pm$").replace(MISSING, "--"))
        cells.index = [_latex_escape(str(i)) for i in cells.index]
        cells.columns = [_latex_escape(str(c)) for c in cells.columns]
        cells.index.name = "Task"
        styler = cells.style
        body = styler.to_latex(hrules=True, column_format="l" + "c" * len(cells.columns),
                               position="t", position_float="centering",
                               caption=_latex_escape(caption(t)),
                               label=f"tab:{t.dataset}-{t.metric}".replace("_", "-"))
        # a rule above the recomputed Mean row
        body = body.replace("\nMean &", "\n\\midrule\nMean &")
        chunks.append(body)
    return "\n".join(chunks)


def to_csv(tables: Sequence[Table]) -> str:
    """Long CSV: dataset, metric, task, method, mean, std, n_seeds (fractions, not %)."""
    rows = []
    for t in tables:
        for r in t.mean.index:
            for c in t.mean.columns:
                rows.append({"dataset": t.dataset, "metric": t.metric, "task": r, "method": c,
                             "mean": t.mean.at[r, c], "std": t.std.at[r, c],
                             "n_seeds": t.n_seeds.at[r, c]})
    buf = io.StringIO()
    pd.DataFrame(rows, columns=["dataset", "metric", "task", "method", "mean", "std", "n_seeds"]
                 ).to_csv(buf, index=False, float_format="%.6f")
    return buf.getvalue()


def to_html(tables: Sequence[Table], digits: int = 1) -> str:
    chunks = []
    for t in tables:
        if t.mean.empty:
            continue
        cells = _cells(t, digits, ("<b>", "</b>"))
        html = cells.to_html(escape=False, classes="bench-table", border=0)
        chunks.append(f"<h3>{t.dataset} — {t.metric}</h3>\n{html}\n<p><i>{caption(t)}</i></p>")
    return "\n".join(chunks)


RENDERERS = {"markdown": to_markdown, "latex": to_latex, "html": to_html}


def render(tables: Sequence[Table], fmt: str, digits: int = 1) -> str:
    if fmt == "csv":
        return to_csv(tables)
    return RENDERERS[fmt](tables, digits)
