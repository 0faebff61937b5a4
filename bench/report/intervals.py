"""Confidence intervals of single-seed image AUROC cells, from the jobs' saved test scores.

With one seed a cell has no spread over seeds, yet its AUROC still depends on which test images
happened to be drawn. :func:`with_auroc_intervals` reads each such job's ``scores.npz``
(every test image's score and label, saved next to its record), checks that the scores give the
recorded AUROC, and adds a stratified-bootstrap interval (:func:`bench.report.stats.
bootstrap_auroc`). Cells with several seeds keep mean ± std; the Mean row gets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from bench.core.errors import UsageError
from bench.records.store import Store
from bench.report.aggregate import MEASURED, Table, column_labels
from bench.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_auroc

METRIC = "image_auroc"
#: the saved scores must give the recorded AUROC to this precision
TOLERANCE = 1e-6


def interval_note(level: float, n_resamples: int, seed: int, n_cells: int) -> str:
    return (f"[low, high]: {level:g}% confidence interval of the image AUROC of each single-seed "
            f"cell ({n_cells} here), by a stratified bootstrap of that job's test set (normal "
            f"and anomalous images resampled separately, {n_resamples} resamples, percentile "
            f"interval, seed {seed}; scipy.stats.bootstrap); cells with several seeds show mean "
            "± std over seeds instead, the Mean row no interval")


def with_auroc_intervals(store: Store, df: pd.DataFrame, tables: Sequence[Table], level: float,
                         n_resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> list[Table]:
    """``tables`` (image AUROC method tables built from ``df``) with an interval per single-seed
    measured cell; refuses a job without saved scores or whose scores disagree with its record."""
    out = []
    for t in tables:
        if t.metric != METRIC:
            raise UsageError(f"--ci is the interval of the image AUROC (from the saved test "
                             f"scores); this table is {t.metric}")
        sel = df[(df["dataset"] == t.dataset) & (df["metric"] == METRIC)
                 & (df["status"] == "ok") & df["value"].notna()]
        sel = sel.assign(column=column_labels(sel))
        low = pd.DataFrame(np.nan, index=t.mean.index, columns=t.mean.columns)
        high = low.copy()
        for (column, task), g in sel.groupby(["column", "task"]):
            if (column not in t.mean.columns or task not in t.mean.index
                    or t.kind(str(column)) != MEASURED or g["seed"].nunique() != 1):
                continue
            rec = g.sort_values("id").iloc[0]
            where = f"job {rec['id']} ({column}, {t.dataset}/{task})"
            art = store.read_artifacts(str(rec["suite"]), str(rec["id"]))
            if art is None:
                raise UsageError(f"{where} saved no test scores (scores.npz); --ci needs them: "
                                 "rerun the job")
            iv = bootstrap_auroc(art.labels, art.scores, level=level / 100,
                                 n_resamples=n_resamples, seed=seed)
            recorded = float(t.mean.at[task, column])
            if abs(iv.point - recorded) > TOLERANCE:
                raise UsageError(f"{where}: its saved scores give an AUROC of {iv.point:.6f}, "
                                 f"its record {recorded:.6f}; rerun the job")
            low.at[task, column], high.at[task, column] = iv.low, iv.high
        n_cells = int(low.notna().to_numpy().sum())
        note = interval_note(level, n_resamples, seed, n_cells)
        out.append(replace(t, ci_low=low, ci_high=high, notes=[*t.notes, note]))
    return out
