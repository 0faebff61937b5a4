"""Degenerate detectors: results that no tolerance should let through, whatever the baseline.

Two kinds, both from the store's tidy frame (:meth:`bench.records.store.Store.load`):

- **constant scores**: a record whose test images all got the same score (its
  ``score_summary.distinct`` is 1). Its AUROC is exactly 0.5 and means nothing; records written
  before ``score_summary`` existed are not judged.
- **a column at chance**: a method (with its variant) whose AUROC on *every* task of a dataset,
  averaged over seeds, lies within :data:`CHANCE_BAND` of 0.5, on at least :data:`MIN_TASKS`
  tasks. A working detector lands that close to 0.5 on one task now and then; on every task of
  a dataset it is a dead detector (random maps, a broken score sign on half the data, inputs that
  never reached it). Only AUROCs (:data:`CHANCE_METRICS`) have a chance level that does not
  depend on the test set (AP's is the anomaly fraction).

``bench check`` fails on either; tables mark such cells with :data:`MARK` and say why in the
caption.
"""

from __future__ import annotations

import pandas as pd

#: half-width of the chance band around an AUROC of 0.5
CHANCE_BAND = 0.02
#: tasks a column needs before it can be called at chance (one task near 0.5 is no evidence)
MIN_TASKS = 2
#: metrics whose chance level is 0.5 whatever the test set
CHANCE_METRICS = ("image_auroc", "pixel_auroc")
#: the mark of a degenerate cell in tables
MARK = "‡"

IDENTITY = ["method", "overrides", "dataset"]


def chance_text(metric: str) -> str:
    return f"{metric} within 0.5 ± {CHANCE_BAND:g} on every task (≥ {MIN_TASKS} tasks)"


def at_chance(per_task: pd.Series) -> bool:
    """Whether per-task AUROCs (one value per task) put their column at chance."""
    values = per_task.dropna()
    return len(values) >= MIN_TASKS and bool(((values - 0.5).abs() <= CHANCE_BAND + 1e-12).all())


def constant_records(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok record whose test scores are constant: identity, task, seed, id,
    ``reason``."""
    if "constant_scores" not in df.columns or df.empty:
        return pd.DataFrame(columns=[*IDENTITY, "task", "seed", "id", "reason"])
    ok = df[(df["status"] == "ok") & (df["constant_scores"] == True)]  # noqa: E712 (None: unknown)
    rows = ok.drop_duplicates("id")[[*IDENTITY, "task", "seed", "id"]].copy()
    rows["reason"] = "constant image scores (one value for every test image)"
    return rows.reset_index(drop=True)


def chance_columns(df: pd.DataFrame, metrics: tuple[str, ...] = CHANCE_METRICS) -> pd.DataFrame:
    """One row per (method, overrides, dataset, metric) at chance: ``tasks`` (how many),
    ``low``/``high`` (the range of its per-task values), ``reason``."""
    sel = df[(df["status"] == "ok") & df["metric"].isin(list(metrics)) & df["value"].notna()]
    rows = []
    per_task = sel.groupby([*IDENTITY, "metric", "task"])["value"].mean()
    for (method, overrides, dataset, metric), values in per_task.groupby(
            level=[*IDENTITY, "metric"]):
        if at_chance(values):
            rows.append({"method": method, "overrides": overrides, "dataset": dataset,
                         "metric": metric, "tasks": len(values), "low": float(values.min()),
                         "high": float(values.max()),
                         "reason": f"{chance_text(metric)}: {len(values)} tasks, "
                                   f"{values.min():.3f}–{values.max():.3f}"})
    return pd.DataFrame(rows, columns=[*IDENTITY, "metric", "tasks", "low", "high", "reason"])
