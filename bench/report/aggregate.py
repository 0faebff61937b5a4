"""Aggregators: pure functions from the store's tidy frame to tables.

Means are always recomputed from per-task values (never copied from a summary), a task missing
for a column stays missing (NaN, shown as such) and makes that column's Mean missing too, so that
no mean silently covers fewer tasks than its neighbours. Several records of one
(column, task, seed) — the same job in two suites — are averaged before anything else, so a
seed is never counted twice.

Columns are of three kinds: ``measured`` (our records), ``reference`` (published numbers,
see :mod:`bench.report.reference`) and ``delta`` (measured − reference, in percentage points).
Only measured columns compete for the bold "best per row".
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from bench.core.settings import (
    DEFAULT_SETTING,
    FEW_SHOT,
    POOLED_ROW,
    SETTINGS,
    UNIFIED,
    setting_label,
)
from bench.records.key import variant_label
from bench.records.record import window_rule
from bench.report.degenerate import CHANCE_METRICS, MARK, at_chance, chance_text
from bench.report.reference import provenance_text, reference_columns

MEAN_ROW = "Mean"
MEASURED, REFERENCE, DELTA = "measured", "reference", "delta"
#: how the summary rows of a unified table read: what each of them is
UNIFIED_ROW_LABELS = {MEAN_ROW: "Mean (class-averaged)", POOLED_ROW: "Pooled (whole test set)"}

#: history-derived metrics: the suffix and the policy it stands for, short (column titles)
HISTORY_POLICIES = {
    "_converged_mean": "converged mean",
    "_converged_std": "converged std",
    "_converged_n": "converged n",
    "_best_on_test_optimistic": "best on test, optimistic",
}


def history_policy(metric: str) -> str | None:
    """The short policy of a history-derived metric (``converged mean``), else ``None``: such a
    value is not the record's checkpoint, and tables say so instead of the checkpoint policy."""
    for suffix, text in HISTORY_POLICIES.items():
        if metric.endswith(suffix):
            return text
    return None


def published_policy(protocol: str) -> str:
    """How a published column chose its model, short, from its ``protocol`` text."""
    text = protocol.lower()
    if "best test-set" in text or "optimistic" in text:
        return "best on test, optimistic"
    if "after convergence" in text:
        return "mean after convergence"
    if "checkpoint not stated" in text:
        return "checkpoint not stated"
    return "policy not stated"


#: override keys left out of column titles: the caption names every column's weights
WEIGHT_KEYS = ("expert_weights", "backbone_weights")


def column_label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if variant else method


def short_labels(pairs: Sequence[tuple[str, str]], overrides: Sequence[str]) -> list[str]:
    """Column titles without the weight overrides (the caption states each column's weights),
    except where two different variants would then share a title: those keep the full label."""
    def short(method: str, ov: str) -> str:
        kept = {k: v for k, v in json.loads(ov or "{}").items() if k not in WEIGHT_KEYS}
        return column_label(method, variant_label(kept))

    shorts = [short(m, ov) for (m, _), ov in zip(pairs, overrides, strict=True)]
    owners: dict[str, set[str]] = {}
    for s, (m, v) in zip(shorts, pairs, strict=True):
        owners.setdefault(s, set()).add(column_label(m, v))
    return [s if len(owners[s]) == 1 else column_label(m, v)
            for s, (m, v) in zip(shorts, pairs, strict=True)]


@dataclass
class Table:
    """One paper-style table: rows = tasks plus a Mean row, columns = methods or levels.

    ``provenance`` holds table-wide facts (seeds, suites, pixel protocol); ``column_provenance``
    the expert weights and checkpoint policy of each measured column; ``notes`` go into the
    caption (sources of published numbers, what an ablation held fixed, how an interval was
    computed); ``ci_low``/``ci_high``, when set, hold a confidence interval per cell.
    """

    dataset: str
    metric: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n_seeds: pd.DataFrame
    provenance: dict[str, list[str]] = field(default_factory=dict)
    column_provenance: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    column_methods: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    title: str = ""
    #: display titles of columns where they differ from the key (a history metric's policy,
    #: what a Δ column compares); see :meth:`header`
    headers: dict[str, str] = field(default_factory=dict)
    #: optional per-cell confidence interval (fractions), shown next to single-seed cells
    ci_low: pd.DataFrame | None = None
    ci_high: pd.DataFrame | None = None
    #: (row, column) of degenerate cells (:mod:`bench.report.degenerate`), marked in print
    degenerate: set[tuple[str, str]] = field(default_factory=set)
    #: the setting of the records (``one-class``, ``unified``, ``few-shot k=4``, ...)
    setting: str = DEFAULT_SETTING
    #: printed titles of rows where they differ from the key (a unified table's Mean, Pooled)
    row_labels: dict[str, str] = field(default_factory=dict)
    #: what a row is (the header of the row labels)
    row_name: str = "task"
    #: whether the columns compete (bold best per row); a severity table's columns do not
    compare_columns: bool = True

    @property
    def columns(self) -> list[str]:
        return list(self.mean.columns)

    @property
    def tasks(self) -> list[str]:
        return [str(r) for r in self.mean.index if r not in (MEAN_ROW, POOLED_ROW)]

    def row_label(self, row: object) -> str:
        return self.row_labels.get(str(row), str(row))

    def kind(self, column: str) -> str:
        return self.kinds.get(column, MEASURED)

    def header(self, column: str) -> str:
        """The column's printed title: its key, plus the policy of a history-derived metric."""
        return self.headers.get(column, column)

    @property
    def empty(self) -> bool:
        return self.mean.empty


def order_tasks(tasks: Sequence[str], order: Sequence[str] | None) -> list[str]:
    def natural(t: str) -> tuple[int, int, str]:
        return (0, int(t), "") if t.isdigit() else (1, 0, t)

    if order:
        known = [t for t in order if t in set(tasks)]
        return known + sorted(set(tasks) - set(known), key=natural)
    return sorted(set(tasks), key=natural)


def setting_column(df: pd.DataFrame) -> pd.Series:
    """Each row's setting (``one-class`` for frames from before settings)."""
    if "setting" not in df.columns:
        return pd.Series(DEFAULT_SETTING, index=df.index)
    return df["setting"].fillna(DEFAULT_SETTING)


def _shots_column(df: pd.DataFrame) -> pd.Series:
    if "shots" not in df.columns:
        return pd.Series(0, index=df.index)
    return df["shots"].fillna(0).astype(int)


def _pooled_column(df: pd.DataFrame) -> pd.Series:
    if "pooled" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["pooled"].fillna(False).astype(bool)


def in_setting(df: pd.DataFrame, setting: str = DEFAULT_SETTING,
               shots: int | None = None) -> pd.Series:
    """Rows of ``setting`` (and k ``shots``, few-shot), pooled rows included."""
    mask = setting_column(df) == setting
    if shots is not None:
        mask &= _shots_column(df) == int(shots)
    return mask


def without_pooled(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the pooled rows of unified records (their task is no category)."""
    return df[~_pooled_column(df)]


def setting_groups(df: pd.DataFrame) -> list[tuple[str, int | None]]:
    """The (setting, shots) pairs of ``df``'s rows, one-class first, then unified, few-shot by
    k, corrupted."""
    pairs = {(str(s), int(k) if s == FEW_SHOT else None)
             for s, k in zip(setting_column(df), _shots_column(df), strict=True)}
    return sorted(pairs, key=lambda p: (SETTINGS.index(p[0]) if p[0] in SETTINGS else 99,
                                        p[1] or 0))


def _selected(df: pd.DataFrame, dataset: str, metric: str, setting: str = DEFAULT_SETTING,
              shots: int | None = None, pooled: bool = False) -> pd.DataFrame:
    """The ok rows of ``dataset`` and ``metric`` in ``setting``; ``pooled`` picks a unified
    record's pooled rows instead of its categories'."""
    return df[(df["dataset"] == dataset) & (df["metric"] == metric) & (df["status"] == "ok")
              & in_setting(df, setting, shots) & (_pooled_column(df) == pooled)]


def _values(x: Any) -> list[str]:
    """Distinct non-missing values as sorted strings."""
    return sorted({str(v) for v in x if not is_missing(v)})


def _build(sel: pd.DataFrame, dataset: str, metric: str, task_order: Sequence[str] | None,
           column_order: Sequence[str] | None = None, allow_unequal_seeds: bool = False) -> Table:
    """Mean/std/n over seeds per (task, column) of ``sel`` (which has a ``column`` field).

    A column whose tasks have different numbers of seeds gets a missing Mean (its Mean would
    weigh tasks of different precision alike) unless ``allow_unequal_seeds``; either way the
    caption says so.
    """
    # one value per (column, task, seed): the same job recorded in two suites counts once
    per_seed = sel.groupby(["column", "task", "seed"])["value"].mean()
    grouped = per_seed.groupby(level=["task", "column"])
    mean = grouped.mean().unstack("column")
    std = grouped.std(ddof=0).unstack("column")
    n = grouped.count().unstack("column")
    rows = order_tasks(list(mean.index), task_order)
    cols = list(column_order) if column_order else sorted(mean.columns)
    mean, std, n = (x.reindex(index=rows, columns=cols) for x in (mean, std, n))
    # the Mean row: the mean over tasks of the per-task means (NaN if any task is missing)
    mean.loc[MEAN_ROW] = mean.loc[rows].mean(axis=0, skipna=False)
    std.loc[MEAN_ROW] = _mean_row_std(per_seed, rows).reindex(cols)
    n.loc[MEAN_ROW] = n.loc[rows].min(axis=0)
    for x in (mean, std, n):
        x.columns.name = None
    notes = _unequal_seed_notes(mean, std, n, rows, allow_unequal_seeds)
    provenance = {
        "seeds": sorted({str(x) for x in sel["seed"].unique()}, key=int),
        "suite": _values(sel["suite"]),
        "pixel_model_resolution": _values(
            int(x) for x in sel["pixel_model_resolution"].dropna()),
        "pixel_mask_size": _values(sel["pixel_mask_size"].dropna()),
        "pixel_thresholds": _values(sel["pixel_thresholds"].dropna()),
        "pixel_includes_normal": _values(sel.get("pixel_includes_normal", pd.Series(dtype=object))),
    }
    column_provenance = {
        str(c): {"expert": _values(g["expert"]),
                 "checkpoint_policy": _values(g["checkpoint_policy"]),
                 "threshold_quantile": _values(g["threshold_quantile"]),
                 "seeds": [",".join(sorted({str(x) for x in g["seed"].unique()}, key=int))],
                 "converged_window": sorted({_window(cfg) for cfg in g["config"]})}
        for c, g in sel.groupby("column")
    }
    methods = {str(c): str(g["method"].iloc[0]) for c, g in sel.groupby("column")}
    policy = history_policy(metric)
    headers = {str(c): f"{c} ({policy})" for c in cols} if policy else {}
    degenerate, why = _degenerate(sel, metric, mean, rows)
    return Table(dataset, metric, mean, std, n, provenance, column_provenance,
                 dict.fromkeys(cols, MEASURED), methods, notes=notes + why,
                 title=f"{dataset} — {metric}", headers=headers, degenerate=degenerate)


def _degenerate(sel: pd.DataFrame, metric: str, mean: pd.DataFrame,
                rows: list[str]) -> tuple[set[tuple[str, str]], list[str]]:
    """The degenerate cells of a table and the caption's note on them: cells with a record of
    constant scores, and every cell of a column at chance (an AUROC table)."""
    const: set[tuple[str, str]] = set()
    if "constant_scores" in sel.columns:
        flat = sel[sel["constant_scores"] == True]  # noqa: E712 (None: not known)
        const = {(str(t), str(c)) for t, c in zip(flat["task"], flat["column"], strict=True)}
    chance = [str(c) for c in mean.columns
              if metric in CHANCE_METRICS and at_chance(mean.loc[rows, c])]
    notes = []
    if const:
        notes.append(f"{MARK} degenerate: constant image scores (one value for every test "
                     "image): " + ", ".join(f"{c} on {t}" for t, c in sorted(const)))
    if chance:
        notes.append(f"{MARK} degenerate: {chance_text(metric)}: {', '.join(chance)}")
    return const | {(str(r), c) for c in chance for r in [*rows, MEAN_ROW]}, notes


def _window(config: Any) -> str:
    """The converged window a record's config asked for (the default where it names none)."""
    try:
        last = json.loads(config).get("converged_window", 0) if isinstance(config, str) else 0
    except ValueError:
        last = 0
    return window_rule(int(last or 0))


def _unequal_seed_notes(mean: pd.DataFrame, std: pd.DataFrame, n: pd.DataFrame,
                        rows: list[str], allow: bool) -> list[str]:
    """Blank (or, with ``allow``, keep) the Mean of columns whose tasks have unequal seed
    counts; the caption's note on them."""
    counts = n.loc[rows]
    unequal = [c for c in counts.columns if counts[c].dropna().nunique() > 1]
    if not unequal:
        return []
    spans = ", ".join(f"{c}: {int(counts[c].min())}–{int(counts[c].max())} seeds per task"
                      for c in unequal)
    if allow:
        return [f"Mean over tasks with unequal seed counts ({spans}), shown as asked "
                "(--allow-unequal-seeds): its tasks weigh alike despite unequal precision"]
    mean.loc[MEAN_ROW, unequal] = np.nan
    std.loc[MEAN_ROW, unequal] = np.nan
    return [f"Mean – where tasks have unequal seed counts ({spans}); "
            "--allow-unequal-seeds shows it"]


def _mean_row_std(per_seed: pd.Series, rows: list[str]) -> pd.Series:
    """Std over seeds of the per-seed mean over tasks (the spread a reader cares about)."""
    wide = per_seed.unstack("task").reindex(columns=rows)
    seed_means = wide.mean(axis=1, skipna=False)
    return seed_means.groupby(level="column").std(ddof=0)


def column_labels(sel: pd.DataFrame) -> list[str]:
    """Each row's column title (method and variant, see :func:`short_labels`), so that tables,
    statistics and intervals built from the same rows name their columns alike."""
    pairs = list(zip(sel["method"], sel["variant"], strict=True))
    return short_labels(pairs, list(sel["overrides"]))


def method_table(df: pd.DataFrame, dataset: str, metric: str,
                 task_order: Sequence[str] | None = None,
                 allow_unequal_seeds: bool = False, setting: str = DEFAULT_SETTING,
                 shots: int | None = None) -> Table:
    """Per task and method: mean and std over seeds; a Mean row recomputed from the tasks.

    Only records of ``setting`` (and ``shots``) enter. A unified table's rows are the
    categories (each from its share of the one model's scores), its Mean the class average
    of those rows, and a last row, Pooled, the metric over the whole test set at once.
    """
    label = setting_label(setting, shots)
    title = f"{dataset} — {metric}" + ("" if setting == DEFAULT_SETTING else f" ({label})")
    sel = _selected(df, dataset, metric, setting, shots)
    if sel.empty:
        empty = pd.DataFrame()
        return Table(dataset, metric, empty, empty, empty, title=title, setting=label)
    t = _build(sel.assign(column=column_labels(sel)), dataset, metric, task_order,
               allow_unequal_seeds=allow_unequal_seeds)
    t.title, t.setting = title, label
    t.notes[:0] = setting_notes(setting, shots)
    if setting == UNIFIED:
        _add_pooled(t, _selected(df, dataset, metric, setting, shots, pooled=True))
    return t


def setting_notes(setting: str, shots: int | None) -> list[str]:
    """What a table's caption says about its setting (nothing for one-class)."""
    if setting == UNIFIED:
        return ["unified setting: one model per method, dataset and seed, trained on every "
                "category's normal training images at once, never told an image's category; "
                f"each category row is the metric on that category's test images; "
                f"{UNIFIED_ROW_LABELS[MEAN_ROW]} is the mean of the category rows; "
                f"{UNIFIED_ROW_LABELS[POOLED_ROW]} is the metric over all test images of all "
                "categories scored together (one ranking, one threshold), not an average"]
    if setting == FEW_SHOT:
        return [f"few-shot setting: k={shots} training images per task, drawn with each seed "
                "(record: few_shot.ids); mean ± std over seeds, i.e. over draws"]
    if setting != DEFAULT_SETTING:
        return [f"{setting} setting: the clean test set's values (the corruptions: bench table "
                "--corruptions)"]
    return []


def _add_pooled(table: Table, pooled: pd.DataFrame) -> None:
    """Append the Pooled row (mean ± std over seeds of each column's pooled value), in place."""
    sel = pooled.assign(column=column_labels(pooled)) if len(pooled) else pooled
    cols = table.columns
    per_seed = (sel.groupby(["column", "seed"])["value"].mean() if len(sel)
                else pd.Series(dtype=float))
    by_col = per_seed.groupby(level="column") if len(per_seed) else None
    for frame, how in ((table.mean, "mean"), (table.std, "std"), (table.n_seeds, "count")):
        if by_col is None:
            frame.loc[POOLED_ROW] = np.nan
            continue
        values = getattr(by_col, how)(**({"ddof": 0} if how == "std" else {}))
        frame.loc[POOLED_ROW] = values.reindex(cols)
    table.row_labels = dict(UNIFIED_ROW_LABELS)


# ----------------------------------------------------------------------------- ablations


def level_label(value: Any) -> str:
    """How a config value appears as a column: lists joined with ``+`` (``pool4+pool5``)."""
    if isinstance(value, list):
        return "+".join(level_label(v) for v in value)
    return str(value)


def level_sort_key(value: Any) -> tuple[Any, ...]:
    """Numbers by value, lists by length then names (single layers, then last 2, 3, 4)."""
    if isinstance(value, bool) or value is None:
        return (2, 0, str(value))
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    if isinstance(value, list):
        return (1, len(value), level_label(value))
    return (2, 0, str(value))


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def ablation_factors(df: pd.DataFrame) -> list[str]:
    """Config fields that some record overrides with at least two different values."""
    seen: dict[str, set[str]] = {}
    for text in df["overrides"].dropna().unique():
        for k, v in json.loads(text).items():
            seen.setdefault(k, set()).add(_canon(v))
    levels: dict[str, set[str]] = {}
    for text in df["config"].dropna().unique():
        cfg = json.loads(text)
        for k in seen:
            if k in cfg:
                levels.setdefault(k, set()).add(_canon(cfg[k]))
    return sorted(k for k, v in levels.items() if len(v) > 1)


def ablation_tables(df: pd.DataFrame, dataset: str, metric: str, factor: str,
                    task_order: Sequence[str] | None = None,
                    allow_unequal_seeds: bool = False, setting: str = DEFAULT_SETTING,
                    shots: int | None = None) -> list[Table]:
    """One table per method: the levels of config field ``factor`` as columns.

    Levels come from each record's resolved config. Only records that hold every *other*
    ablated field (a field some record overrides) at the reference setting enter the table:
    fields the factor's own variants override with it keep those values (e.g. ``score_layers:
    trained`` next to ``layers``), all others their default (the value in records that do not
    override them). So the baseline run supplies the default level without being run twice, and
    a λ variant never leaks into the layers table.
    """
    sel = _selected(df, dataset, metric, setting, shots)
    label = setting_label(setting, shots)
    tables = []
    for method, msel in sorted(sel.groupby("method"), key=lambda x: str(x[0])):
        cfgs = [json.loads(c) for c in msel["config"]]
        ovs = [json.loads(o) for o in msel["overrides"]]
        has = np.array([factor in c for c in cfgs])
        in_block = [factor in o for o in ovs]
        if not any(in_block):
            continue
        others = sorted({k for o in ovs for k in o} - {factor})
        fixed: dict[str, str] = {}
        for key in others:
            block_vals = [_canon(c.get(key)) for c, o, b in zip(cfgs, ovs, in_block, strict=True)
                          if b and key in o]
            default_vals = [_canon(c.get(key)) for c, o in zip(cfgs, ovs, strict=True)
                            if key not in o] or [_canon(c.get(key)) for c in cfgs]
            fixed[key] = Counter(block_vals or default_vals).most_common(1)[0][0]
        keep = has & np.array([all(_canon(c.get(k)) == v for k, v in fixed.items()) for c in cfgs])
        if not keep.any():
            continue
        values = {level_label(c[factor]): c[factor] for c, k in zip(cfgs, keep, strict=True) if k}
        order = sorted(values, key=lambda lab: level_sort_key(values[lab]))
        sub = msel[keep].assign(column=[level_label(c[factor])
                                        for c, k in zip(cfgs, keep, strict=True) if k])
        t = _build(sub, dataset, metric, task_order, order, allow_unequal_seeds)
        t.title = f"{dataset} — {metric}: ablation of {factor} ({method})" + (
            "" if setting == DEFAULT_SETTING else f", {label}")
        t.setting = label
        t.notes[:0] = setting_notes(setting, shots)
        t.column_methods = dict.fromkeys(order, str(method))
        if fixed:
            t.notes.append("held fixed: " + ", ".join(
                f"{k}={level_label(json.loads(v))}" for k, v in sorted(fixed.items())))
        tables.append(t)
    return tables


# ----------------------------------------------------------------------------- published numbers


def with_reference(table: Table, reference: pd.DataFrame, kinds: Sequence[str] = ("paper",),
                   delta: bool = True) -> Table:
    """Add published columns (and Δ = ours − paper for the paper's method) to ``table``.

    Published means are recomputed over the rows shown, like ours, so a Δ in the Mean row
    compares the same tasks; the caption says so when fewer tasks are shown than published.
    """
    rows = table.tasks
    mean, std, n = table.mean.copy(), table.std.copy(), table.n_seeds.copy()
    kinds_out, notes = dict(table.kinds), list(table.notes)
    headers = dict(table.headers)
    paper_col: tuple[str, str, str] | None = None
    bounds: list[str] = []
    baseline_cols: list[tuple[str, str, bool]] = []
    for ref in reference_columns(reference, table.dataset, table.metric, rows, kinds):
        if not ref.has_values:
            notes.append(f"{ref.label}: {ref.note} ({ref.status}; {ref.source})")
            continue
        label = ref.label + (" UNVERIFIED" if ref.status == "UNVERIFIED" else "")
        values = pd.Series(ref.values, dtype=float).reindex(rows)
        mean_only = not math.isnan(ref.mean_only)
        mean[label] = [*values.tolist(),
                       ref.mean_only if mean_only else values.mean(skipna=False)]
        std[label] = [*pd.Series(ref.std, dtype=float).reindex(rows).tolist(),
                      ref.stated_std if ref.full or mean_only else np.nan]
        n[label] = [*([1] * len(rows)), ref.stated_n if ref.full else 1]
        kinds_out[label] = REFERENCE
        notes.append(f"{label}: {provenance_text(ref)}"
                     + (f"; protocol: {ref.protocol}" if ref.protocol else "")
                     + ("; the published mean over all of the dataset's tasks only (Mean row)"
                        if mean_only else "")
                     + (f"; {ref.partial_note}" if ref.partial_note else ""))
        if ref.upper_bound:
            bounds.append(label)
        if ref.kind == "paper" and paper_col is None:
            paper_col = (label, ref.method, published_policy(ref.protocol))
        if ref.kind == "baseline":
            baseline_cols.append((label, ref.method, mean_only))
    if not any(k == REFERENCE for k in kinds_out.values()) and "paper" in kinds:
        others = reference_columns(reference, table.dataset, None, rows, kinds)
        metrics = sorted({r.metric for r in others if r.has_values})
        if metrics:
            notes.append(f"no published numbers for {table.metric} on {table.dataset}; "
                         f"published: {', '.join(metrics)}")
        elif not others:
            notes.append(f"no published MKD numbers for {table.dataset}")
    if delta and paper_col is not None:
        label, ref_method, their_policy = paper_col
        ours = [c for c in table.columns
                if table.kind(c) == MEASURED and table.column_methods.get(c) == ref_method]
        for c in ours:
            d = f"Δ {c}"
            ckpt = ", ".join(table.column_provenance.get(c, {}).get("checkpoint_policy") or [])
            our_policy = history_policy(table.metric) or ckpt or "checkpoint unknown"
            headers[d] = f"Δ {c} ({our_policy}) − {label} ({their_policy})"
            mean[d] = mean[c] - mean[label]
            std[d] = np.nan
            n[d] = np.nan
            kinds_out[d] = DELTA
        notes.append(f"Δ = ours ({history_policy(table.metric) or 'checkpoint as stated'}) − "
                     f"{label} ({their_policy}), in percentage points" if ours else
                     f"no Δ: no {ref_method} column in this table")
        if their_policy == "mean after convergence" and history_policy(table.metric) is None:
            notes.append(f"like for like with {label}: --metric {table.metric}_converged_mean "
                         "(records evaluated during training, eval_every > 0)")
    if delta:
        _baseline_deltas(table, baseline_cols, mean, std, n, kinds_out, headers, notes)
    if bounds:
        notes.append("upper bounds (the source chose hyper-parameters on the test set's labels, "
                     "so these are optimistic): " + ", ".join(bounds))
    return replace(table, mean=mean, std=std, n_seeds=n, kinds=kinds_out, notes=notes,
                   headers=headers)


def _baseline_deltas(table: Table, columns: Sequence[tuple[str, str, bool]], mean: pd.DataFrame,
                     std: pd.DataFrame, n: pd.DataFrame, kinds: dict[str, str],
                     headers: dict[str, str], notes: list[str]) -> None:
    """Δ = ours − published for each published baseline column and each measured column of the
    same method (in place)."""
    for label, method, mean_only in columns:
        ours = [c for c in table.columns
                if table.kind(c) == MEASURED and table.column_methods.get(c) == method]
        for c in ours:
            d = f"Δ {c} − {label}"
            headers[d] = d
            mean[d] = mean[c] - mean[label]
            std[d] = np.nan
            n[d] = np.nan
            kinds[d] = DELTA
            if mean_only:
                notes.append(f"{d}: Mean row only, our mean over the {len(table.tasks)} task(s) "
                             f"shown against {label}'s published mean over all tasks")
        if ours:
            notes.append(f"Δ {', '.join(ours)} − {label}: ours − published, in percentage points")


# ----------------------------------------------------------------------------- helpers


def best_per_row(table: Table, higher_is_better: bool = True,
                 digits: int | None = None) -> pd.DataFrame:
    """Boolean frame marking the best measured value(s) of each row (none with one column).

    With ``digits``, values are compared as printed (percent, rounded), so cells that read the
    same are bold together.
    """
    m = table.mean
    measured = [c for c in m.columns if table.kind(c) == MEASURED]
    out = pd.DataFrame(False, index=m.index, columns=m.columns)
    if len(measured) < 2 or not table.compare_columns:  # bold would only add noise
        return out
    sub = m[measured].astype(float)
    if digits is not None:
        sub = (100 * sub).round(digits)
    best = sub.max(axis=1) if higher_is_better else sub.min(axis=1)
    out[measured] = sub.eq(best, axis=0) & sub.notna()
    return out


def dataset_summary(tables: Sequence[Table]) -> pd.DataFrame:
    """Mean row of each table: measured columns × datasets (for a heatmap)."""
    data = {t.dataset: t.mean.loc[MEAN_ROW, [c for c in t.columns if t.kind(c) == MEASURED]]
            for t in tables if not t.empty}
    return pd.DataFrame(data)


def finite_or_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def dataset_order(df: pd.DataFrame) -> list[str]:
    return sorted(df["dataset"].dropna().unique().tolist())


def is_missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(np.isnan(x))
    except TypeError:
        return False


def build_tables(df: pd.DataFrame, metric: str, *, datasets: Sequence[str] | None = None,
                 task_orders: dict[str, list[str]] | None = None, ablation: str | None = None,
                 reference: pd.DataFrame | None = None,
                 kinds: Sequence[str] = ("paper",),
                 allow_unequal_seeds: bool = False) -> list[Table]:
    """The tables ``bench table`` prints: per dataset, methods (or a factor's levels) as columns.

    With ``reference`` (see :func:`bench.report.reference.load_reference`) the published columns of
    ``kinds`` are added to the one-class method tables, with Δ against the paper (published
    numbers are one-class numbers). One table per dataset and setting (few-shot: per k).
    """
    names = list(datasets) if datasets else dataset_order(df)
    out: list[Table] = []
    groups = setting_groups(df)
    for name in names:
        order = (task_orders or {}).get(name)
        for setting, shots in groups:
            if ablation:
                out.extend(ablation_tables(df, name, metric, ablation, order,
                                           allow_unequal_seeds, setting, shots))
                continue
            t = method_table(df, name, metric, order, allow_unequal_seeds, setting, shots)
            if t.empty:
                continue
            add_reference = reference is not None and setting == DEFAULT_SETTING
            out.append(with_reference(t, reference, kinds) if add_reference else t)
    return out


# ----------------------------------------------------------------------------- corruptions

#: the column of a corruption table that holds the clean test set's value
CLEAN_COLUMN = "clean"


def corruption_tables(cdf: pd.DataFrame, metric: str,
                      datasets: Sequence[str] | None = None) -> list[Table]:
    """The corrupted setting's tables (``cdf``: :meth:`~bench.records.store.Store.
    load_corruptions`): per dataset and method column, one row per corruption plus a Mean over
    the corruptions, one column per severity after the clean one; each cell the mean over the
    dataset's tasks of the per-seed values, then mean ± std over seeds."""
    sel = cdf[(cdf["metric"] == metric) & (cdf["status"] == "ok")]
    if sel.empty:
        return []
    sel = sel.assign(method_column=column_labels(sel))
    names = list(datasets) if datasets else dataset_order(sel)
    out: list[Table] = []
    for dataset in names:
        dsel = sel[sel["dataset"] == dataset]
        for column, csel in sorted(dsel.groupby("method_column"), key=lambda x: str(x[0])):
            clean = csel[csel["severity"] == 0]
            damaged = csel[csel["severity"] > 0]
            corruptions = [str(c) for c in pd.unique(damaged["corruption"])]
            # the clean value beside every corruption's row: the reference each row degrades from
            rows = [damaged.assign(column=damaged["severity"].astype(str),
                                   task=damaged["corruption"])]
            rows += [clean.assign(column=CLEAN_COLUMN, task=c) for c in corruptions]
            both = pd.concat(rows, ignore_index=True)
            n_tasks = csel["task"].nunique()
            severities = sorted({int(s) for s in damaged["severity"]})
            # _build averages the dataset's tasks within each (corruption, severity, seed)
            t = _build(both, dataset, metric, corruptions, [CLEAN_COLUMN, *map(str, severities)])
            t.title = f"{dataset} — {metric} against corruption severity ({column})"
            t.setting, t.row_name, t.compare_columns = "corrupted", "corruption", False
            t.column_methods = dict.fromkeys(t.columns, str(csel["method"].iloc[0]))
            t.headers = {CLEAN_COLUMN: "clean", **{str(s): f"severity {s}" for s in severities}}
            t.notes[:0] = [f"corrupted setting: rows are corruptions, columns severities "
                           f"(ImageNet-C's definitions and levels, Hendrycks & Dietterich 2019); "
                           f"each cell the mean over the dataset's {n_tasks} task(s), then "
                           "mean ± std over seeds; Mean: over the corruptions; the model is "
                           "trained once on clean images and its threshold (F1 at the training "
                           "quantile) taken from clean training images"]
            out.append(t)
    return out
