"""What the numbers cost: fit time, scoring time per image and peak memory per method × dataset.

From :meth:`bench.records.store.Store.summary` (one row per record), pure: one
:class:`~bench.report.stat_tables.StatTable` per dataset, rows = the score tables' columns
(method and variant), rendered like the statistics tables (:mod:`bench.report.render_stats`).
Only ok records count. Each cell is over the cell's jobs (tasks × seeds):

- **fit s**: mean of ``timing_s.fit``;
- **score ms/image**: mean over jobs of ``timing_s.score`` / test images (the test set's
  scoring pass, maps included; not the training set's, which ``score_train`` times);
- **peak RAM MiB**: the largest ``peak_rss_mb`` (the job's process: the worker's imports, the
  data and the model together);
- **peak GPU MiB**: the largest ``peak_gpu_mb`` (torch's CUDA allocations; – on CPU).

The caption names the hardware the records ran on (CPU model, usable cores, torch threads, GPU):
times from different machines or thread counts are not comparable, and it says so when they mix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.report.aggregate import column_labels
from bench.report.render import MISSING
from bench.report.stat_tables import StatTable

QUANTITIES = ("jobs", "fit s", "score ms/image", "peak RAM MiB", "peak GPU MiB")


def _fmt(x: float, digits: int) -> str:
    return MISSING if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _hardware(rows: pd.DataFrame) -> str:
    """The machines and thread counts of ``rows``, in words."""
    seen = sorted({(str(r.cpu_model or "unknown CPU"), r.cpu_cores, r.threads,
                    str(r.device or "cpu"), str(r.device_name or ""))
                   for r in rows.itertuples()}, key=str)
    parts = []
    for cpu, cores, threads, device, name in seen:
        text = f"{cpu}, {cores} usable core(s), {threads} torch thread(s) per job"
        if device.startswith("cuda"):
            text += f", {name or device}"
        parts.append(text)
    mixed = (" (mixed: times from different machines or thread counts are not comparable)"
             if len(parts) > 1 else "")
    return "hardware: " + "; ".join(parts) + mixed


def cost_tables(summary: pd.DataFrame, datasets: Sequence[str] | None = None,
                digits: int = 1) -> list[StatTable]:
    """One cost table per dataset (of ``datasets``, default all) from ``Store.summary``."""
    ok = summary[summary["status"] == "ok"]
    if datasets:
        ok = ok[ok["dataset"].isin(list(datasets))]
    if ok.empty:
        return []
    ok = ok.assign(column=column_labels(ok))
    per_image = 1000 * ok["score_s"].astype(float) / ok["test_images"].astype(float)
    ok = ok.assign(score_ms=per_image.where(ok["test_images"].astype(float) > 0))
    out = []
    for dataset, rows in sorted(ok.groupby("dataset"), key=lambda x: str(x[0])):
        g = rows.groupby("column")
        data = pd.DataFrame({
            "jobs": g.size(),
            "fit_s": g["fit_s"].mean(),
            "score_ms_per_image": g["score_ms"].mean(),
            "peak_rss_mb": g["peak_rss_mb"].max(),
            "peak_gpu_mb": g["peak_gpu_mb"].max(),
        })
        cells = pd.DataFrame({
            "jobs": data["jobs"].astype(int).astype(str),
            "fit s": [_fmt(v, digits) for v in data["fit_s"]],
            "score ms/image": [_fmt(v, digits + 1) for v in data["score_ms_per_image"]],
            "peak RAM MiB": [_fmt(v, 0) for v in data["peak_rss_mb"]],
            "peak GPU MiB": [_fmt(v, 0) for v in data["peak_gpu_mb"]],
        }, index=data.index)
        cells = cells.rename_axis(None)  # a copy: data keeps its index name
        suites = ", ".join(sorted({str(s) for s in rows["suite"]}))
        caption = "; ".join([
            f"Cost per job on {dataset}, from the ok records of suite {suites}",
            "fit s = mean timing_s.fit; score ms/image = mean timing_s.score / test images "
            "(the test set's scoring pass); peak RAM = largest peak RSS of the job's process "
            "(imports, data and model); peak GPU = largest torch CUDA allocation (– on CPU); "
            "over the cell's jobs (tasks × seeds)",
            _hardware(rows),
        ]) + "."
        long = data.reset_index().rename(columns={"column": "method"}).assign(
            table="cost", dataset=dataset, caption=caption)
        out.append(StatTable(title=f"Cost — {dataset}", cells=cells, caption=caption,
                             data=long, corner="method"))
    return out
