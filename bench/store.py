"""The result store: one JSON record per job, written atomically; the only reader and writer.

Layout: ``<root>/runs/<suite>/<job_id>.json``. A record is written to a temporary file in the same
folder, flushed and fsync-ed, then moved into place with ``os.replace``, so a reader (or a runner
killed midway) never sees half a record. Fields are documented in ``results/README.md``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.jobs import Job, variant_label

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)

#: columns of the tidy (long) frame returned by :meth:`Store.load`
ID_COLUMNS = ["suite", "id", "method", "variant", "overrides", "dataset", "task", "seed",
              "status", "expert", "checkpoint_policy", "pixel_resolution"]


class Store:
    """Records under ``root`` (usually the project's ``results/`` folder)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def suite_dir(self, suite: str) -> Path:
        return self.root / "runs" / suite

    def path(self, job: Job) -> Path:
        return self.suite_dir(job.suite) / f"{job.id}.json"

    # ------------------------------------------------------------------ writing
    def write(self, record: dict[str, Any]) -> Path:
        """Write one record atomically; returns its path."""
        job = Job.from_key(record["job"])
        if record.get("id") != job.id:
            raise ValueError("record id does not match its job")
        path = self.path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{job.id}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, indent=1, sort_keys=True, allow_nan=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    # ------------------------------------------------------------------ reading
    def read(self, job: Job) -> dict[str, Any] | None:
        """The record of ``job``, or None if absent or unreadable."""
        return self._read_path(self.path(job))

    @staticmethod
    def _read_path(path: Path) -> dict[str, Any] | None:
        try:
            with path.open(encoding="utf-8") as fh:
                rec = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable record %s: %s", path, exc)
            return None
        if not isinstance(rec, dict) or "job" not in rec:
            log.warning("ignoring malformed record %s", path)
            return None
        return rec

    def status(self, job: Job) -> str | None:
        rec = self.read(job)
        return None if rec is None else str(rec.get("status"))

    def _paths(self, suites: Iterable[str] | None) -> Iterator[Path]:
        base = self.root / "runs"
        if not base.is_dir():
            return
        dirs = [base / s for s in suites] if suites is not None else sorted(base.iterdir())
        for d in dirs:
            if d.is_dir():
                yield from sorted(d.glob("*.json"))

    def records(self, suites: Iterable[str] | str | None = None) -> list[dict[str, Any]]:
        """Every readable record of the given suites (all suites by default)."""
        if isinstance(suites, str):
            suites = [suites]
        out = []
        for p in self._paths(suites):
            rec = self._read_path(p)
            if rec is not None:
                out.append(rec)
        return out

    def load(self, suites: Iterable[str] | str | None = None) -> pd.DataFrame:
        """A tidy frame: one row per (record, metric) with the identifying columns."""
        rows: list[dict[str, Any]] = []
        for rec in self.records(suites):
            base = _identity(rec)
            metrics = rec.get("metrics") or {}
            if not metrics:
                rows.append({**base, "metric": None, "value": float("nan")})
            for name, value in sorted(metrics.items()):
                rows.append({**base, "metric": name,
                             "value": float("nan") if value is None else float(value)})
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, "metric", "value"])

    def summary(self, suites: Iterable[str] | str | None = None) -> pd.DataFrame:
        """One row per record: identity, status, error, timings."""
        rows = []
        for rec in self.records(suites):
            t = rec.get("timing_s") or {}
            rows.append({**_identity(rec), "error": rec.get("error"),
                         "total_s": t.get("total"), "fit_s": t.get("fit"),
                         "score_s": t.get("score"), "created": rec.get("created")})
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, "error", "total_s", "fit_s", "score_s",
                                           "created"])


def _identity(rec: dict[str, Any]) -> dict[str, Any]:
    job = rec["job"]
    overrides = job.get("overrides") or {}
    proto = rec.get("pixel_protocol") or {}
    return {
        "suite": job["suite"],
        "id": rec.get("id"),
        "method": job["method"],
        "variant": variant_label(overrides),
        "overrides": json.dumps(overrides, sort_keys=True),
        "dataset": job["dataset"],
        "task": str(job["task"]),
        "seed": int(job["seed"]),
        "status": rec.get("status"),
        "expert": rec.get("expert"),
        "checkpoint_policy": rec.get("checkpoint_policy"),
        "pixel_resolution": proto.get("resolution"),
    }
