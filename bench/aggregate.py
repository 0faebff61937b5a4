"""Aggregators: pure functions from the store's tidy frame to tables.

Means are always recomputed from per-task values (never copied from a summary), a task missing
for a method stays missing (NaN, shown as such) and makes that method's Mean missing too, so that
no mean silently covers fewer tasks than its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MEAN_ROW = "Mean"


def column_label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if variant else method


@dataclass
class Table:
    """One paper-style table: rows = tasks plus a Mean row, columns = methods."""

    dataset: str
    metric: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n_seeds: pd.DataFrame
    provenance: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return list(self.mean.columns)


def _task_order(tasks: Sequence[str], order: Sequence[str] | None) -> list[str]:
    if order:
        known = [t for t in order if t in set(tasks)]
        return known + sorted(set(tasks) - set(known))
    return sorted(set(tasks), key=lambda t: (len(t), t))


def method_table(df: pd.DataFrame, dataset: str, metric: str,
                 task_order: Sequence[str] | None = None) -> Table:
    """Per task and method: mean and std over seeds; a Mean row recomputed from the tasks."""
    sel = df[(df["dataset"] == dataset) & (df["metric"] == metric) & (df["status"] == "ok")]
    if sel.empty:
        empty = pd.DataFrame()
        return Table(dataset, metric, empty, empty, empty)
    sel = sel.assign(column=[column_label(m, v) for m, v in zip(sel["method"], sel["variant"],
                                                                 strict=True)])
    grouped = sel.groupby(["task", "column"])["value"]
    mean = grouped.mean().unstack("column")
    std = grouped.std(ddof=0).unstack("column")
    n = grouped.count().unstack("column")
    rows = _task_order(list(mean.index), task_order)
    mean, std, n = (x.reindex(rows) for x in (mean, std, n))
    # the Mean row: the mean over tasks of the per-task means (NaN if any task is missing)
    mean.loc[MEAN_ROW] = mean.loc[rows].mean(axis=0, skipna=False)
    std.loc[MEAN_ROW] = _mean_row_std(sel, rows)
    n.loc[MEAN_ROW] = n.loc[rows].min(axis=0)
    provenance = {
        "expert": sorted({str(x) for x in sel["expert"].dropna().unique()}),
        "checkpoint_policy": sorted({str(x) for x in sel["checkpoint_policy"].dropna().unique()}),
        "seeds": sorted({str(x) for x in sel["seed"].unique()}),
        "suite": sorted({str(x) for x in sel["suite"].unique()}),
        "pixel_resolution": sorted({str(int(x)) for x in sel["pixel_resolution"].dropna()}),
    }
    return Table(dataset, metric, mean, std, n, provenance)


def _mean_row_std(sel: pd.DataFrame, rows: list[str]) -> pd.Series:
    """Std over seeds of the per-seed mean over tasks (the spread a reader cares about)."""
    per_seed = sel.groupby(["column", "seed", "task"])["value"].mean().unstack("task")
    per_seed = per_seed.reindex(columns=rows)
    seed_means = per_seed.mean(axis=1, skipna=False)
    return seed_means.groupby(level="column").std(ddof=0)


def best_per_row(table: Table, higher_is_better: bool = True) -> pd.DataFrame:
    """Boolean frame marking the best value(s) of each row."""
    m = table.mean
    if m.empty:
        return m.astype(bool)
    best = m.max(axis=1) if higher_is_better else m.min(axis=1)
    return m.eq(best, axis=0) & m.notna()


def finite_or_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def dataset_order(df: pd.DataFrame) -> list[str]:
    return sorted(df["dataset"].dropna().unique().tolist())


def is_missing(x: float) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))
