"""Renderers: :class:`~bench.report.aggregate.Table` to Markdown, LaTeX (booktabs), CSV and HTML.

Numbers are AUROC-style fractions shown as percentages with ``digits`` decimals; the best measured
value of each row is bold; mean ± std is shown when a cell has more than one seed (or a published
std), a confidence interval ``[low, high]`` when the table holds one for a single-seed cell; Δ
columns are signed percentage points; a missing cell is shown as ``–`` (never as a blank that
could be mistaken for a zero). Every table carries a caption that says what produced it:
metric and protocol, expert weights, checkpoint policy, seeds, suite and the sources of
published numbers.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from bench.core.metrics import MODEL_RES_METRICS, NATIVE_METRICS
from bench.records.record import window_rule
from bench.report.aggregate import (
    DELTA,
    MEAN_ROW,
    MEASURED,
    Table,
    best_per_row,
    history_policy,
    is_missing,
)
from bench.report.degenerate import MARK

MISSING = "–"

METRIC_TEXT = {
    "image_auroc": "image AUROC",
    "image_ap": "image average precision",
    "image_f1_max": ("image F1-max: the best F1 over all thresholds of the test scores (anomalous "
                     "iff score ≥ threshold; optimistic: test labels choose the threshold)"),
    "image_f1_at_train_quantile": ("image F1 at a threshold chosen without test labels: the "
                                   "q-quantile of the method's scores on its own normal "
                                   "training images (anomalous iff score ≥ threshold)"),
    "pixel_auroc": "pixel AUROC over all test pixels (standard MVTec protocol)",
    "pixel_aupro": "pixel AUPRO to FPR 0.3, divided by 0.3",
    "pixel_f1_max": "pixel F1-max: the best F1 over all thresholds (chosen on the test pixels)",
    "pixel_auroc_model_res": "pixel AUROC over all test pixels, at the model's input size",
    "pixel_aupro_model_res": "pixel AUPRO to FPR 0.3, divided by 0.3, at the model's input size",
    "pixel_auroc_mkd": ("pixel AUROC by the official MKD code's protocol (defective test images "
                        "only, soft masks, per-image normalized maps, opening at each threshold): "
                        "the metric of the paper's Table 4"),
}
HISTORY_SUFFIXES = {
    "_converged_mean": "mean over the evaluations of the converged window",
    "_converged_std": "std over the evaluations of the converged window",
    "_converged_n": "number of evaluations in the converged window",
    "_best_on_test_optimistic": ("best evaluation during training, chosen on the test set "
                                 "(optimistic: test labels select the epoch)"),
}
#: the bias of a threshold taken from scores on the training images themselves
TRAIN_THRESHOLD_BIAS = (
    "bias: training images are not unseen normals and no held-out normal images are used (that "
    "would cost a second fit); a method that memorizes or tightly fits its training images "
    "(nearest-neighbour memories, density or distance fits on few images) scores them lower than "
    "unseen normals, so its threshold is too low and it calls most test images anomalous (F1 "
    "near 2p/(1 + p) at anomaly share p); one that keeps a share of its training images on its "
    "decision boundary can score them higher (threshold too high, few anomalies called); "
    "compare with image_f1_max, the best threshold chosen on the test labels")
CHECKPOINT_TEXT = {"final": "final (last epoch)"}
#: metrics whose protocol takes maps a method makes for it (bench.core.metrics.OWN_MAP_METRICS):
#: which maps each column's cells are computed on
OWN_MAPS_TEXT = {
    "pixel_auroc_mkd": ("maps: a method that makes its own maps for this protocol is scored on "
                        "them (record: pixel_protocol.mkd_protocol_maps = \"method\"; MKD-like "
                        "methods: the official per-image normalization clip((g − min)/(p99 − min), "
                        "0, 1) before the Gaussian), every other method on its standard maps "
                        "min-max normalized per image (pixel_protocol.mkd_protocol_maps = "
                        "\"per-image min-max\")"),
}


def describe_metric(metric: str) -> str:
    for suffix, text in HISTORY_SUFFIXES.items():
        if metric.endswith(suffix):
            base = metric[: -len(suffix)]
            return f"{METRIC_TEXT.get(base, base)}, {text}"
    return METRIC_TEXT.get(metric, metric)


def _per_column(table: Table, key: str, empty: str) -> str:
    cols = [c for c in table.columns if table.kind(c) == MEASURED]
    vals = {c: ", ".join(table.column_provenance.get(c, {}).get(key) or []) or empty
            for c in cols}
    distinct = sorted(set(vals.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else empty
    groups = {v: [c for c in cols if vals[c] == v] for v in distinct}
    return "; ".join(f"{v} ({', '.join(cs)})" for v, cs in groups.items())


def _pixel_protocol(table: Table) -> str:
    """Where a pixel metric was scored: at the masks' own resolution or the model's size."""
    p = table.provenance
    model = ", ".join(p.get("pixel_model_resolution") or []) or "unknown"
    base = metric_base(table.metric)
    if base in NATIVE_METRICS:
        sizes = ", ".join(p.get("pixel_mask_size") or []) or "unknown"
        how = "; ".join(p.get("pixel_thresholds") or []) or "unknown"
        where = (f"scored at the ground truth's own resolution ({sizes} px), each map (model "
                 f"size {model} px) upsampled bilinearly to its mask; thresholds: {how}")
    else:
        where = f"scored at the model's input size ({model} px)"
        if base in MODEL_RES_METRICS:
            where += (", masks shrunk bilinearly and cut at 0.5 (thin and small defects can "
                      "vanish: the standard metric is the native-resolution one)")
    if base.startswith("pixel_auroc_mkd"):
        scope = "defective test images only"
    else:
        inc = set(p.get("pixel_includes_normal") or [])
        scope = {frozenset({"True"}): "normal test images included",
                 frozenset({"False"}): "normal test images excluded"}.get(
            frozenset(inc), "normal images: unknown")
    return f"pixel metric {where}, {scope}"


def metric_base(metric: str) -> str:
    """The metric a history-derived name summarizes (``x_converged_mean`` -> ``x``)."""
    for suffix in HISTORY_SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def caption(table: Table) -> str:
    """What produced the numbers, in one paragraph."""
    p = table.provenance
    parts = [f"{table.title or table.dataset}. {describe_metric(table.metric)}, in %"]
    measured = sum(table.kind(c) == MEASURED for c in table.columns)
    parts.append("mean ± std over seeds where a cell has several; Mean row recomputed from the "
                 "rows shown (– if any row is missing)"
                 + ("; best measured value per row in bold" if measured > 1
                    and table.compare_columns else ""))
    parts.append("expert weights: " + _per_column(table, "expert", "none"))
    if history_policy(table.metric):
        # a value from the training history is no checkpoint's: say which policy chose it
        parts.append(f"checkpoint: {history_policy(table.metric)} over the training history's "
                     "evaluations, not the record's final checkpoint")
        if "_converged_" in table.metric:
            parts.append("converged window: "
                         + _per_column(table, "converged_window", window_rule(0)))
    else:
        ckpt = _per_column(table, "checkpoint_policy", "unknown")
        parts.append("checkpoint: " + CHECKPOINT_TEXT.get(ckpt, ckpt))
    if table.metric == "image_f1_at_train_quantile":
        parts.append("q = " + _per_column(table, "threshold_quantile", "unknown")
                     + " (record: threshold.quantile; threshold.value is each job's threshold)")
        parts.append(TRAIN_THRESHOLD_BIAS)
    if table.metric.startswith("pixel"):
        parts.append(_pixel_protocol(table))
        if table.metric in OWN_MAPS_TEXT:
            parts.append(OWN_MAPS_TEXT[table.metric])
    seeds = _per_column(table, "seeds", "")
    if seeds:  # per column where the columns' seeds differ
        parts.append("seeds " + seeds)
    elif p.get("seeds"):
        parts.append("seeds " + ",".join(p["seeds"]))
    if p.get("suite"):
        parts.append("suite " + ", ".join(p["suite"]))
    parts.extend(table.notes)
    return "; ".join(parts) + "."


@dataclass(frozen=True)
class _Style:
    bold: Callable[[str], str]
    pm: str
    minus: str


def _format(table: Table, digits: int, style: _Style) -> pd.DataFrame:
    best = best_per_row(table, digits=digits)
    out = pd.DataFrame(index=table.mean.index, columns=table.mean.columns, dtype=object)
    for r in table.mean.index:
        for c in table.mean.columns:
            v = table.mean.at[r, c]
            if is_missing(v):
                out.at[r, c] = MISSING
                continue
            kind = table.kind(c)
            if kind == DELTA:
                text = f"{100 * v:+.{digits}f}".replace("-", style.minus)
                out.at[r, c] = text
                continue
            text = f"{100 * v:.{digits}f}"
            n = table.n_seeds.at[r, c]
            s = table.std.at[r, c]
            if not is_missing(s) and (kind != MEASURED or (not is_missing(n) and n > 1)):
                text += f"{style.pm}{100 * s:.{digits}f}"
            elif kind == MEASURED and (ci := _interval(table, r, c)) is not None:
                text += f" [{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"
            if (str(r), str(c)) in table.degenerate:
                text += MARK
            out.at[r, c] = style.bold(text) if best.at[r, c] else text
    out.columns = [table.header(str(c)) for c in out.columns]
    out.index = [table.row_label(r) for r in out.index]
    return out


def _interval(table: Table, row: object, column: str) -> tuple[float, float] | None:
    """The cell's confidence interval, if the table has one for it."""
    if table.ci_low is None or table.ci_high is None:
        return None
    try:
        lo, hi = table.ci_low.at[row, column], table.ci_high.at[row, column]
    except KeyError:
        return None
    return None if is_missing(lo) or is_missing(hi) else (float(lo), float(hi))


def _ci(table: Table, row: object, column: str, end: int) -> float:
    ci = _interval(table, row, column)
    return float("nan") if ci is None else ci[end]


# ----------------------------------------------------------------------------- Markdown

_MD = _Style(bold=lambda s: f"**{s}**", pm=" ± ", minus="−")


def to_markdown(tables: Sequence[Table], digits: int = 1) -> str:
    chunks = []
    for t in tables:
        if t.empty:
            continue
        cells = _format(t, digits, _MD)
        cells.index.name = t.row_name
        md = cells.to_markdown(disable_numparse=True)
        text = caption(t).replace("*", r"\*")
        chunks.append(f"### {t.title}\n\n{md}\n\n*{text}*\n")
    return "\n".join(chunks)


# ----------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"χ²": r"$\chi^2$", "α": r"$\alpha$", "<": r"$<$", ">": r"$>$",
                  "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "λ": r"$\lambda$",
                  "σ": r"$\sigma$", "×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$",
                  "–": "--", "—": "---", "→": r"$\rightarrow$", "…": r"\ldots{}",
                  MARK: r"$^\ddagger$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols we print (pdflatex-safe)."""
    text = re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group(0)], text)
    for a, b in _LATEX_UNICODE.items():
        text = text.replace(a, b)
    return text


_TEX = _Style(bold=lambda s: rf"\textbf{{{s}}}", pm=" ± ", minus="−")


def to_latex(tables: Sequence[Table], digits: int = 1) -> str:
    """One booktabs ``table`` environment per table; needs ``\\usepackage{booktabs}``."""
    chunks = []
    for t in tables:
        if t.empty:
            continue
        cells = _format(t, digits, _TEX)
        label = re.sub(r"[^A-Za-z0-9]+", "-", t.title or f"{t.dataset}-{t.metric}").strip("-")
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 rf"\caption{{{latex_escape(caption(t))}}}", rf"\label{{tab:{label.lower()}}}",
                 rf"\begin{{tabular}}{{l{'c' * len(cells.columns)}}}", r"\toprule",
                 " & ".join([t.row_name.capitalize(),
                             *(latex_escape(str(c)) for c in cells.columns)]) + r" \\",
                 r"\midrule"]
        for r in cells.index:
            if r == t.row_label(MEAN_ROW):
                lines.append(r"\midrule")
            row = [latex_escape(str(r)), *(_tex_cell(str(v)) for v in cells.loc[r])]
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        chunks.append("\n".join(lines))
    return "\n".join(chunks)


def _tex_cell(text: str) -> str:
    """Escape a formatted cell, keeping its ``\\textbf{...}`` wrapper."""
    m = re.fullmatch(r"\\textbf\{(.*)\}", text)
    if m:
        return rf"\textbf{{{latex_escape(m.group(1))}}}"
    return latex_escape(text)


# ----------------------------------------------------------------------------- CSV


def to_csv(tables: Sequence[Table]) -> str:
    """Long CSV, fractions not %: one row per cell, with its kind and provenance."""
    rows = []
    for t in tables:
        cap = caption(t)
        for r in t.mean.index:
            for c in t.mean.columns:
                prov = t.column_provenance.get(c, {})
                rows.append({"dataset": t.dataset, "metric": t.metric, "task": r, "method": c,
                             "mean": t.mean.at[r, c], "std": t.std.at[r, c],
                             "n_seeds": t.n_seeds.at[r, c], "kind": t.kind(c),
                             "expert": ";".join(prov.get("expert") or []),
                             "checkpoint_policy": ";".join(prov.get("checkpoint_policy") or []),
                             "ci_low": _ci(t, r, c, 0), "ci_high": _ci(t, r, c, 1),
                             "table": t.title, "caption": cap})
    buf = io.StringIO()
    pd.DataFrame(rows, columns=["dataset", "metric", "task", "method", "mean", "std", "n_seeds",
                                "kind", "expert", "checkpoint_policy", "ci_low", "ci_high", "table",
                                "caption"]
                 ).to_csv(buf, index=False, float_format="%.6f")
    return buf.getvalue()


# ----------------------------------------------------------------------------- HTML

_HTML = _Style(bold=lambda s: f"<b>{s}</b>", pm=" ± ", minus="−")


def to_html(tables: Sequence[Table], digits: int = 1) -> str:
    """``<table class="bench-table">`` elements with a ``<caption>``; no external resources."""
    chunks = []
    for t in tables:
        if t.empty:
            continue
        chunks.append(html_table(t.title, caption(t), t.row_name, _format(t, digits, _HTML),
                                 t.row_label(MEAN_ROW)))
    return "\n".join(chunks)


def html_table(title: str, text: str, corner: str, cells: pd.DataFrame,
               mean_row: str | None) -> str:
    """One titled ``bench-table`` of already formatted (and escaped) cells, in a wrapper that
    scrolls a wide table within the page instead of widening it."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [corner, *cells.columns])
    body = []
    for r in cells.index:
        cls = ' class="mean"' if mean_row is not None and r == mean_row else ""
        tds = "".join(f"<td>{v}</td>" for v in cells.loc[r])
        body.append(f"<tr{cls}><th>{html.escape(str(r))}</th>{tds}</tr>")
    return (f'<h3>{html.escape(title)}</h3>\n<div class="table-wrap"><table class="bench-table">'
            f"\n<caption>{html.escape(text)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            "<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")


RENDERERS = {"markdown": to_markdown, "latex": to_latex, "html": to_html}
FORMATS = ("markdown", "latex", "csv", "html")


def render(tables: Sequence[Table], fmt: str, digits: int = 1) -> str:
    if fmt == "csv":
        return to_csv(tables)
    return RENDERERS[fmt](tables, digits)
