"""Published numbers: MKD's paper tables and independent re-runs, as committed CSV files.

The canonical files are committed in ``results/reference/*.csv``; ``bench/report/published`` is a
link to that folder, so the same files ship inside the package and an installed ``bench`` finds
them.
Each file is one published table, transcribed from the project's reference notes
with its source on every row. A CSV file of the same columns placed in ``<results>/reference/``
is read too and replaces a shipped file of the same name (for numbers a user transcribes
themselves). Columns:

- ``table``: the published table; ``kind``: ``paper`` (the authors' numbers), ``rerun`` (an
  independent re-run, a different protocol) or ``baseline`` (another method's published number,
  e.g. OC-SVM or Deep SVDD as other papers report them: ``bench table --published``);
  ``label``: the column title in our tables.
- ``dataset``, ``task`` (our names: ``"0"``..``"9"``, MVTec categories in lower case with
  underscores; ``Mean`` = the mean as stated by the source; ``*`` = the dataset's only task),
  ``metric`` (our metric name), ``method``, ``setting`` (empty for the headline setting).
- ``value_pct``, ``std_pct`` (percent, as published; empty = not found), ``n_runs``.
- ``status``: ``verified`` (confirmed by a second source, or taken from the source itself),
  ``two_sources_agree`` (two independent second-hand sources state the same value),
  ``single_source`` (one second-hand transcription; captions say "transcribed from <source>
  (single source)") or ``UNVERIFIED`` (not found, no value); ``protocol``: how
  the source chose its model (the paper averages over epochs after convergence, a re-run may
  pick the best test-set checkpoint); ``source``, ``note``.
- ``upper_bound`` (optional column; empty = no): ``yes`` where the source chose
  hyper-parameters or checkpoints on the test set's labels (e.g. GEOM's OC-SVM baselines, ν and
  γ picked by test AUROC), so the number is optimistic; captions list those columns as upper
  bounds.
- A column with only a ``Mean`` row (a source that states the mean over all tasks, no per-task
  values) is shown in the Mean row only, and its Δ says that it compares our mean over the rows
  shown with the published mean over all of the dataset's tasks.

A published ``image_auroc`` is also shown next to our ``image_auroc_converged_mean`` and
``image_auroc_best_on_test_optimistic`` (same base metric); the caption states each source's
protocol so the reader sees which of ours is the like-for-like comparison.

Values are never guessed: a table that was not found has rows with an empty value, marked
UNVERIFIED, so that ``bench table --paper`` can say so instead of showing nothing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

import pandas as pd

from bench.core.errors import DataCorruptError

COLUMNS = ["table", "kind", "label", "dataset", "task", "metric", "method", "setting",
           "value_pct", "std_pct", "n_runs", "status", "protocol", "source", "note"]
#: our history-derived metrics compare with the published number of their base metric
MATCHED_SUFFIXES = ("_converged_mean", "_best_on_test_optimistic")
KINDS = ("paper", "rerun", "baseline")
#: ``verified``: confirmed by a second source (or taken from the source itself);
#: ``two_sources_agree``: two independent second-hand sources state the same value;
#: ``single_source``: transcribed from one second-hand source, nothing confirms it;
#: ``UNVERIFIED``: not found (no value)
STATUSES = ("verified", "two_sources_agree", "single_source", "UNVERIFIED")
SINGLE_SOURCE = "single_source"
TWO_SOURCES = "two_sources_agree"
#: optional columns and the value a file without them gets
OPTIONAL = {"upper_bound": ""}
UPPER_BOUND_VALUES = ("", "yes", "no")
STATED_MEAN = "Mean"
ANY_TASK = "*"


class _Readable(Protocol):
    """A shipped resource or a local path: both have a name and bytes."""

    @property
    def name(self) -> str: ...

    def read_bytes(self) -> bytes: ...


def _read(name: str, source: _Readable) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.BytesIO(source.read_bytes()), dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataCorruptError(f"reference file {name}: {exc}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataCorruptError(f"reference file {name}: missing column(s) {', '.join(missing)}")
    for col, default in OPTIONAL.items():
        if col not in df.columns:
            df[col] = default
    bad_bound = sorted(set(df["upper_bound"]) - set(UPPER_BOUND_VALUES))
    if bad_bound:
        raise DataCorruptError(f"reference file {name}: upper_bound must be yes, no or empty, "
                               f"not {bad_bound}")
    bad_kind = sorted(set(df["kind"]) - set(KINDS))
    bad_status = sorted(set(df["status"]) - set(STATUSES))
    if bad_kind or bad_status:
        raise DataCorruptError(f"reference file {name}: unknown kind {bad_kind} or status "
                               f"{bad_status}; expected {KINDS} and {STATUSES}")
    out = df[[*COLUMNS, *OPTIONAL]].copy()
    for col in ("value_pct", "std_pct", "n_runs"):
        try:
            out[col] = pd.to_numeric(out[col].replace("", None), errors="raise")
        except ValueError as exc:
            raise DataCorruptError(f"reference file {name}: column {col}: {exc}") from None
    unverified_value = out["value_pct"].isna() & (out["status"] != "UNVERIFIED")
    if unverified_value.any():
        row = int(unverified_value.idxmax())
        raise DataCorruptError(f"reference file {name}: a {out['status'].iloc[row]} row needs a "
                               f"value (row {row + 2})")
    out.insert(0, "file", name)
    return out


def load_reference(results_root: str | Path | None = None) -> pd.DataFrame:
    """Every reference row: shipped files, then ``<results_root>/reference/*.csv`` overrides."""
    files: dict[str, _Readable] = {}
    shipped = resources.files("bench.report") / "published"
    if shipped.is_dir():
        for entry in shipped.iterdir():
            if entry.name.endswith(".csv"):
                files[entry.name] = entry
    if results_root is not None:
        local = Path(results_root) / "reference"
        if local.is_dir():
            for path in sorted(local.glob("*.csv")):
                files[path.name] = path
    frames = [_read(name, files[name]) for name in sorted(files)]
    if not frames:
        return pd.DataFrame(columns=["file", *COLUMNS, *OPTIONAL])
    return pd.concat(frames, ignore_index=True)


def stated_mean_check(reference: pd.DataFrame) -> pd.DataFrame:
    """Per published table: the stated mean next to the mean recomputed from its rows."""
    out = []
    keys = ["file", "label", "dataset", "metric", "setting"]
    for key, g in reference.groupby(keys, sort=True):
        stated = g[g["task"] == STATED_MEAN]["value_pct"].dropna()
        rows = g[(g["task"] != STATED_MEAN) & (g["task"] != ANY_TASK)]["value_pct"]
        if stated.empty or rows.empty:
            continue
        out.append({**dict(zip(keys, key, strict=True)), "stated": float(stated.iloc[0]),
                    "recomputed": float(rows.mean(skipna=False)), "n_tasks": len(rows)})
    return pd.DataFrame(out, columns=[*keys, "stated", "recomputed", "n_tasks"])


@dataclass
class RefColumn:
    """Published values of one source for one (dataset, metric), as fractions like ours."""

    label: str
    kind: str
    method: str
    metric: str
    values: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    status: str = "verified"
    protocol: str = ""
    source: str = ""
    note: str = ""
    full: bool = False            # the rows shown are exactly the published rows
    stated_std: float = math.nan  # std of the stated mean (e.g. over runs), used when full
    stated_n: float = 1.0
    partial_note: str = ""
    #: the source chose hyper-parameters or checkpoints on the test labels: optimistic
    upper_bound: bool = False
    #: the published mean over all tasks, for a column without per-task values (else NaN)
    mean_only: float = math.nan

    @property
    def has_values(self) -> bool:
        return (any(not math.isnan(v) for v in self.values.values())
                or not math.isnan(self.mean_only))


def base_metric(metric: str) -> str:
    """``image_auroc_converged_mean`` -> ``image_auroc``; other names unchanged."""
    for suffix in MATCHED_SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def _status(statuses: pd.Series) -> str:
    """A column's status: ``UNVERIFIED`` if any row is, ``single source`` if any row comes from
    one second-hand transcription only, ``two sources agree`` if any row rests on two
    second-hand sources, else empty (verified)."""
    if (statuses == "UNVERIFIED").any():
        return "UNVERIFIED"
    if (statuses == SINGLE_SOURCE).any():
        return "single source"
    return "two sources agree" if (statuses == TWO_SOURCES).any() else ""


def row_statuses(g: pd.DataFrame) -> str:
    """Per-row statuses where they differ within a column (e.g. the mean confirmed by two
    sources, the per-task values by one), for the caption."""
    by = {str(s).replace("_", " "): sorted(g[g["status"] == s]["task"], key=_task_key)
          for s in dict.fromkeys(g["status"])}
    if len(by) < 2:
        return ""
    return "; ".join(f"{status}: {', '.join(tasks)}" for status, tasks in by.items())


def _task_key(task: str) -> tuple[int, str]:
    return (0, f"{int(task):05d}") if task.isdigit() else (1, task)


def provenance_text(col: RefColumn) -> str:
    """Where a published column's numbers come from, as captions state it."""
    if col.status == "single source":
        text = f"transcribed from {col.source} (single source)"
    else:
        text = col.source + (f" ({col.status})" if col.status else "")
    return text + (f" [rows: {col.note}]" if col.note and col.has_values else "")


def _pct(x: object) -> float:
    v = float(x)  # type: ignore[arg-type]
    return v / 100.0 if not math.isnan(v) else math.nan


def reference_columns(reference: pd.DataFrame, dataset: str, metric: str | None,
                      tasks: Sequence[str], kinds: Sequence[str] = KINDS) -> list[RefColumn]:
    """The headline (``setting`` empty) published columns for ``dataset`` and ``metric``.

    ``metric=None`` returns the columns of every metric (to tell a user which ones exist).
    """
    sel = reference[(reference["dataset"] == dataset) & (reference["setting"] == "")
                    & reference["kind"].isin(list(kinds))]
    if metric is not None:
        sel = sel[sel["metric"] == base_metric(metric)]
    out = []
    for (label, met), g in sel.groupby(["label", "metric"], sort=False):
        first = g.iloc[0]
        col = RefColumn(label=str(label), kind=str(first["kind"]), method=str(first["method"]),
                        metric=str(met), source="; ".join(dict.fromkeys(g["source"])),
                        protocol="; ".join(p for p in dict.fromkeys(g["protocol"]) if p),
                        status=_status(g["status"]),
                        upper_bound="upper_bound" in g and bool((g["upper_bound"] == "yes").any()))
        per_task = g[g["task"] != STATED_MEAN]
        wildcard = per_task[per_task["task"] == ANY_TASK]
        for t in tasks:
            row = per_task[per_task["task"] == t]
            row = row if not row.empty else wildcard
            if not row.empty:
                col.values[t] = _pct(row["value_pct"].iloc[0])
                col.std[t] = _pct(row["std_pct"].iloc[0])
        stated = g[g["task"] == STATED_MEAN]
        if (not col.has_values and per_task.empty and not stated.empty
                and not pd.isna(stated["value_pct"].iloc[0])):
            col.mean_only = _pct(stated["value_pct"].iloc[0])
            col.stated_std = _pct(stated["std_pct"].iloc[0])
        if not col.has_values:
            col.note = "; ".join(n for n in dict.fromkeys(g["note"]) if n) or "no value"
            out.append(col)
            continue
        col.note = row_statuses(g) if col.kind == "baseline" else ""
        if not math.isnan(col.mean_only):
            out.append(col)
            continue
        published = set(per_task["task"]) - {ANY_TASK}
        col.full = (published == set(tasks)) or (not published and len(tasks) == 1)
        if col.full and not stated.empty:
            col.stated_std = _pct(stated["std_pct"].iloc[0])
            n_runs = stated["n_runs"].iloc[0]
            col.stated_n = 1.0 if pd.isna(n_runs) else float(n_runs)
        elif published and published != set(tasks):
            shown = len(published & set(tasks))
            stated_text = (f"; published mean over all {len(published)}: "
                           f"{float(stated['value_pct'].iloc[0]):.2f}" if not stated.empty else "")
            col.partial_note = (f"Mean recomputed over the {shown} published task(s) shown"
                                + stated_text)
        out.append(col)
    return out
