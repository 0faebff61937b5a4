"""Score regression checks: compare a suite's records with a committed baseline.

The baseline is a CSV, one row per (method, overrides, dataset, task, seed, metric), sorted and
formatted with fixed precision so that a diff of it reads well in review. ``compare`` is pure:
it returns a frame classifying every pinned value as ``ok``, ``regression``, ``improvement``,
``missing`` (no record, or a failed one) and every unpinned record value as ``new``;
:func:`degenerate_rows` adds ``degenerate`` rows (:mod:`bench.report.degenerate`).

A check fails on a regression, a missing or failed job, a degenerate detector, and on an
**improvement beyond the tolerance** too: a rise is as suspect as a drop (test labels reaching a
threshold, test images in the training set), so it is accepted only by rewriting the baseline
(``bench baseline update``), in review.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import UsageError
from bench.core.metrics import METRIC_NAMES
from bench.core.settings import DEFAULT_SETTING, setting_label
from bench.report.aggregate import in_setting, setting_groups, without_pooled
from bench.report.degenerate import chance_columns, constant_records

#: a baseline row's key: ``setting`` is the job's (``few-shot k=4``); a baseline of one-class
#: jobs only is written (and read) without that column, as before settings existed
KEY = ["method", "overrides", "dataset", "task", "seed", "setting", "metric"]
COLUMNS = [*KEY, "value"]
#: the columns a baseline file must have
REQUIRED = [c for c in COLUMNS if c != "setting"]
#: metrics pinned by default (history-derived ones vary with eval settings and are left out)
DEFAULT_METRICS = METRIC_NAMES
DEFAULT_TOLERANCE = 0.01
#: problems of a baseline listed in its error (the count says how many more)
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Tolerances:
    """Absolute tolerance per metric, with a default for the rest."""

    default: float = DEFAULT_TOLERANCE
    per_metric: Mapping[str, float] | None = None

    def __call__(self, metric: str) -> float:
        return float((self.per_metric or {}).get(metric, self.default))

    @staticmethod
    def parse(items: Sequence[str]) -> Tolerances:
        """``["0.02", "pixel_aupro=0.05"]``: a bare number sets the default."""
        default = DEFAULT_TOLERANCE
        per: dict[str, float] = {}
        for item in items:
            name, sep, value = item.rpartition("=")
            try:
                number = float(value)
            except ValueError:
                raise UsageError(f"--tolerance expects T or METRIC=T, got {item!r}") from None
            if not math.isfinite(number) or number < 0:  # nan would pass every comparison
                raise UsageError(f"--tolerance must be a finite number >= 0, got {item!r}")
            if sep:
                per[name] = number
            else:
                default = number
        return Tolerances(default, per)


def setting_labels(df: pd.DataFrame) -> list[str]:
    """Each row's setting as baselines name it (``one-class``, ``few-shot k=4``)."""
    if "setting" not in df.columns:
        return [DEFAULT_SETTING] * len(df)
    shots = df["shots"] if "shots" in df.columns else pd.Series(None, index=df.index)
    return [setting_label(str(s) if isinstance(s, str) else DEFAULT_SETTING,
                          None if pd.isna(k) else int(k))
            for s, k in zip(df["setting"], shots, strict=True)]


def baseline_frame(df: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS) -> pd.DataFrame:
    """The rows to pin, from a store frame (``Store.load``): ok records, chosen metrics (a
    unified record's categories and its pooled row, task ``Pooled``)."""
    sel = df[(df["status"] == "ok") & df["metric"].isin(list(metrics)) & df["value"].notna()]
    sel = sel.assign(setting=setting_labels(sel))
    out = sel[COLUMNS].copy()
    out["task"] = out["task"].astype(str)
    out["seed"] = out["seed"].astype(int)
    return out.sort_values(KEY, kind="stable").reset_index(drop=True)


def write_baseline(frame: pd.DataFrame) -> str:
    """The CSV text; without a ``setting`` column when every row is one-class."""
    buf = io.StringIO()
    columns = COLUMNS if (frame["setting"] != DEFAULT_SETTING).any() else REQUIRED
    frame[COLUMNS].sort_values(KEY, kind="stable")[columns].to_csv(
        buf, index=False, float_format="%.6f", lineterminator="\n")
    return buf.getvalue()


def read_baseline(path: str | Path) -> pd.DataFrame:
    """The baseline at ``path``, checked: the columns of :data:`COLUMNS`, every key cell
    filled, an integer seed, a finite value and each key once. Any problem is a
    :class:`UsageError` listing every problem with its CSV line number(s)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"baseline file not found: {p} (create it with "
                         "`bench baseline update --suite SUITE`)")
    try:
        with p.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            rows = [(reader.line_num, row) for row in reader if row]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read baseline {p}: {exc}") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UsageError(f"baseline {p} lacks column(s): {', '.join(missing)} (expected "
                         f"{','.join(REQUIRED)}, and setting where not every row is one-class)")
    problems = [f"line {n}: {len(row)} field(s), expected {len(header)}"
                for n, row in rows if len(row) != len(header)]
    parsed: list[dict[str, object]] = []
    keys: dict[tuple[object, ...], list[int]] = {}
    for n, row in rows:
        if len(row) != len(header):
            continue
        cells = {"setting": DEFAULT_SETTING, **dict(zip(header, row, strict=True))}
        problems += [f"line {n}: empty {c}" for c in KEY if c != "seed" and not cells[c].strip()]
        seed, value = _number(cells["seed"], int), _number(cells["value"], float)
        if seed is None:
            problems.append(f"line {n}: seed {cells['seed']!r} is not an integer")
        if value is None:
            problems.append(f"line {n}: value {cells['value']!r} is not a finite number")
        parsed.append({**cells, "seed": seed, "value": value})
        if seed is not None:
            keys.setdefault((cells["method"], cells["overrides"], cells["dataset"],
                             cells["task"], seed, cells["setting"], cells["metric"]),
                            []).append(n)
    problems += [f"lines {', '.join(map(str, ns))}: duplicate key {m} {o} {d}/{t} seed {s} {x}"
                 + ("" if g == DEFAULT_SETTING else f" ({g})")
                 for (m, o, d, t, s, g, x), ns in keys.items() if len(ns) > 1]
    if problems:
        shown = problems[:MAX_PROBLEMS] + (
            [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS
            else [])
        raise UsageError(f"baseline {p} is invalid ({len(problems)} problem(s); fix it, or "
                         "rewrite it with `bench baseline update`):\n"
                         + "\n".join(f"  {x}" for x in shown))
    frame = pd.DataFrame(parsed, columns=COLUMNS)
    return frame.astype({"seed": int, "value": float})


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    """``text`` as a finite ``kind``, or None."""
    try:
        number = kind(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tolerances: Tolerances,
            failed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every pinned and every new value with its status; worst (most negative delta) first.

    Args:
        current: rows as produced by :func:`baseline_frame` from the current records.
        baseline: the committed baseline.
        failed: identity rows (method, overrides, dataset, task, seed, setting, error) of
            failed jobs.
    """
    baseline, current = (f if "setting" in f.columns else f.assign(setting=DEFAULT_SETTING)
                         for f in (baseline, current))
    merged = baseline.merge(current, on=KEY, how="outer", suffixes=("_baseline", "_current"),
                            indicator=True)
    merged = merged.rename(columns={"value_baseline": "baseline", "value_current": "current"})
    merged["delta"] = merged["current"] - merged["baseline"]
    merged["tolerance"] = [tolerances(m) for m in merged["metric"]]
    status = np.where(merged["_merge"] == "right_only", "new", "ok")
    status = np.where(merged["_merge"] == "left_only", "missing", status)
    both = merged["_merge"] == "both"
    status = np.where(both & (merged["delta"] < -merged["tolerance"]), "regression", status)
    status = np.where(both & (merged["delta"] > merged["tolerance"]), "improvement", status)
    merged["status"] = status
    merged["error"] = ""
    if failed is not None and len(failed):
        if "setting" not in failed.columns:
            failed = failed.assign(setting=DEFAULT_SETTING)
        ids = ["method", "overrides", "dataset", "task", "seed", "setting"]
        errs = {tuple(r[c] for c in ids): r["error"] for _, r in failed.iterrows()}
        for i in merged.index[merged["status"] == "missing"]:
            key = tuple(merged.loc[i, c] for c in ids)
            if key in errs:
                merged.loc[i, "status"] = "failed"
                merged.loc[i, "error"] = str(errs[key])
    merged = merged.drop(columns="_merge")
    order = {"failed": 0, "missing": 1, "regression": 2, "improvement": 4, "new": 5, "ok": 3}
    merged["_o"] = merged["status"].map(order)
    merged = merged.sort_values(["_o", "delta", *KEY], kind="stable", na_position="last")
    return merged.drop(columns="_o").reset_index(drop=True)


#: statuses that fail a check
FAILING = ("regression", "improvement", "missing", "failed", "degenerate")


def degenerate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of status ``degenerate`` (in :func:`compare`'s columns) for the ok records of
    ``df`` (a store frame) with constant scores and the columns at chance (each setting on its
    own; a unified record's categories as its tasks)."""
    parts = []
    for setting, shots in setting_groups(df):
        sub = without_pooled(df[in_setting(df, setting, shots)])
        const = constant_records(sub).assign(metric="(scores)")
        chance = chance_columns(sub)
        chance = chance.assign(task=[f"all {n} tasks" for n in chance["tasks"]], seed="")
        rows = pd.concat([const, chance], ignore_index=True)
        parts.append(pd.DataFrame({"method": rows["method"], "overrides": rows["overrides"],
                                   "dataset": rows["dataset"], "task": rows["task"].astype(str),
                                   "seed": rows["seed"], "setting": setting_label(setting, shots),
                                   "metric": rows["metric"], "status": "degenerate",
                                   "error": rows["reason"]}))
    columns = ["method", "overrides", "dataset", "task", "seed", "setting", "metric", "status",
               "error"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def verdict(result: pd.DataFrame) -> bool:
    """True when nothing regressed or rose beyond its tolerance, nothing pinned is missing or
    failed, and no detector is degenerate."""
    return not result["status"].isin(list(FAILING)).any()
