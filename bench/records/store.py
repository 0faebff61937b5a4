"""The result store: one JSON record per job, written atomically; the only reader and writer.

Layout: ``<root>/runs/<suite>/<job_id>.json``, plus small per-job artifacts in
``<root>/runs/<suite>/<job_id>/`` (``scores.npz``: every test image's score and label;
``maps.npz``: a few anomaly maps at float16 with their images and masks) for ROC curves and
localization overlays. Every file is written to a temporary file in the same folder, flushed and
fsync-ed, then moved into place with ``os.replace``, so a reader (or a runner killed midway) never
sees half a file. Fields and files are documented in ``results/README.md``.

The claims that keep two runners from running the same job live next to the records, but their
protocol belongs to scheduling: :mod:`bench.run.claims`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.settings import POOLED_ROW
from bench.records.artifacts import Artifacts, read_artifacts, write_artifacts
from bench.records.files import atomic_write
from bench.records.key import Job, check_suite_name, variant_label
from bench.records.record import Record, RecordError, Status

log = logging.getLogger(__name__)
#: record files already warned about in this process (a command reads the store several times)
_reported: set[Path] = set()


def _warn_once(path: Path, message: str, exc: Exception) -> None:
    if path not in _reported:
        _reported.add(path)
        log.warning(message, path, exc)


#: a record is a few kB (its history and config included); a larger file is damaged
MAX_RECORD_BYTES = 16 * 2**20
#: columns of the tidy (long) frame returned by :meth:`Store.load`
ID_COLUMNS = ["suite", "id", "method", "variant", "overrides", "dataset", "task", "seed",
              "status", "expert", "checkpoint_policy", "pixel_resolution",
              "pixel_model_resolution", "pixel_mask_size", "pixel_thresholds",
              "pixel_includes_normal", "threshold_quantile", "constant_scores", "config",
              "setting", "shots", "pooled"]
#: the row of a corruption frame (:meth:`Store.load_corruptions`) that holds the clean scores
CLEAN = "clean"
#: what :meth:`Store.summary` adds to the identity columns (timings, sizes, memory, hardware)
SUMMARY_COLUMNS = ["error", "total_s", "fit_s", "score_s", "created", "train_images",
                   "test_images", "peak_rss_mb", "peak_gpu_mb", "device", "device_name",
                   "cpu_model", "cpu_cores", "threads"]


class ResultsWriteError(BenchError):
    """A record could not be written (a full disk, a folder made read-only): the run stops."""


class Store:
    """Records under ``root`` (usually the project's ``results/`` folder)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def suite_dir(self, suite: str) -> Path:
        return self.root / "runs" / check_suite_name(suite)

    def path(self, job: Job) -> Path:
        return self.suite_dir(job.suite) / f"{job.id}.json"

    # ------------------------------------------------------------------ writing
    def write(self, record: Record) -> Path:
        """Write one record atomically; returns its path."""
        path = self.path(record.job)
        text = json.dumps(record.to_json(), indent=1, sort_keys=True, allow_nan=True) + "\n"
        try:
            atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
        except OSError as exc:
            raise ResultsWriteError(f"cannot write the record of job {record.id} to {path}: "
                                    f"{exc.strerror or exc}") from exc
        return path

    def artifact_dir(self, suite: str, job_id: str) -> Path:
        return self.suite_dir(suite) / job_id

    def write_artifacts(self, job: Job, labels: np.ndarray, scores: np.ndarray,
                        **arrays: Any) -> dict[str, Any]:
        """Save the job's per-image scores and a few maps next to its record; returns the
        record's ``artifacts`` field (see :func:`bench.records.artifacts.write_artifacts`)."""
        return write_artifacts(self.artifact_dir(job.suite, job.id), labels, scores, **arrays)

    def read_artifacts(self, suite: str, job_id: str) -> Artifacts | None:
        """The artifacts of a job, or None when the job saved none (or they are unreadable)."""
        return read_artifacts(self.artifact_dir(suite, job_id))

    # ------------------------------------------------------------------ reading
    def read(self, job: Job) -> Record | None:
        """The record of ``job``, or None if absent, unreadable or not of this job."""
        rec = self._read_path(self.path(job))
        return rec if rec is not None and rec.id == job.id else None

    @staticmethod
    def _read_path(path: Path) -> Record | None:
        """A record file, checked against the schema; None (with a warning naming the file and
        the reason) when it cannot be read: such a file is treated as absent, so its job runs
        again and its old content is replaced."""
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                raise RecordError(f"{path.stat().st_size:,} bytes, more than a record can be "
                                  f"({MAX_RECORD_BYTES:,})")
            with path.open(encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # bad JSON, not UTF-8, too deep
            _warn_once(path, "ignoring unreadable record %s: %s", exc)
            return None
        try:
            return Record.from_json(data)
        except (RecordError, RecursionError) as exc:
            _warn_once(path, "ignoring malformed record %s: %s", exc)
            return None

    def status(self, job: Job) -> Status | None:
        rec = self.read(job)
        return None if rec is None else rec.status

    def set_aside(self, job: Job) -> Path | None:
        """Move ``job``'s record file aside when it exists but cannot be read (bad JSON, bytes
        that are not UTF-8, a broken schema), so that rerunning the job never overwrites a file
        the user may want to look at; returns where it went (None: nothing to move)."""
        path = self.path(job)
        if not path.exists() or self._read_path(path) is not None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        aside = path.with_name(f"{path.name}.unreadable-{stamp}-{os.getpid()}")
        os.replace(path, aside)
        log.warning("moved the unreadable record %s aside to %s; its job runs again",
                    path, aside.name)
        return aside

    def check_writable(self, suite: str) -> None:
        """Raise a one-line :class:`BenchError` unless records of ``suite`` can be written."""
        folder = self.suite_dir(suite)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-check-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise BenchError(f"cannot write records to {folder}: {exc.strerror or exc}") from None

    def fingerprint(self, job: Job) -> str | None:
        """Identifies the record file now on disk (None if absent): a rewrite changes it."""
        try:
            st = self.path(job).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def _paths(self, suites: Iterable[str] | None) -> Iterator[Path]:
        base = self.root / "runs"
        if not base.is_dir():
            return
        dirs = [base / s for s in suites] if suites is not None else sorted(base.iterdir())
        for d in dirs:
            if d.is_dir():
                yield from sorted(d.glob("*.json"))

    def records(self, suites: Iterable[str] | str | None = None) -> list[Record]:
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
        """A tidy frame: one row per (record, metric) with the identifying columns.

        A unified record (one model for every category) gives one row per (category, metric)
        from its ``category_metrics``, with the category as ``task``, and its pooled metrics
        (over the whole test set) as rows of task :data:`~bench.core.settings.POOLED_ROW`
        marked ``pooled``: a class average is never read from them, and they never enter one.
        """
        rows: list[dict[str, Any]] = []
        for rec in self.records(suites):
            base = _identity(rec)
            metrics = rec.metrics
            if rec.category_metrics is not None:
                for category, values in rec.category_metrics.items():
                    rows.extend(_metric_rows({**base, "task": str(category)}, values))
                base = {**base, "task": POOLED_ROW, "pooled": True}
            rows.extend(_metric_rows(base, metrics))
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, "metric", "value"])

    def load_corruptions(self, suites: Iterable[str] | str | None = None) -> pd.DataFrame:
        """The corrupted setting's metrics, tidy: identity columns, ``corruption``,
        ``severity`` (0 and corruption :data:`CLEAN`: the clean test set), metric, value; one
        row per (ok record of that setting, corruption, severity, metric)."""
        rows: list[dict[str, Any]] = []
        for rec in self.records(suites):
            if not rec.ok or not rec.corrupted:
                continue
            base = _identity(rec)
            entries = rec.corrupted.get("metrics") or []
            names = sorted({k for e in entries for k in e if k not in ("corruption", "severity")})
            for name in names:
                if name in rec.metrics:
                    rows.append({**base, "corruption": CLEAN, "severity": 0, "metric": name,
                                 "value": _value(rec.metrics[name])})
            for entry in entries:
                for name in names:
                    if name in entry:
                        rows.append({**base, "corruption": str(entry["corruption"]),
                                     "severity": int(entry["severity"]), "metric": name,
                                     "value": _value(entry[name])})
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, "corruption", "severity", "metric",
                                           "value"])

    def load_history(self, suites: Iterable[str] | str | None = None) -> pd.DataFrame:
        """Per-evaluation training history, tidy: identity columns, ``epoch``, metric, value."""
        rows: list[dict[str, Any]] = []
        for rec in self.records(suites):
            if not rec.ok:
                continue
            base = _identity(rec)
            for h in rec.history:
                for name, value in h.items():
                    if name != "epoch" and value is not None:
                        rows.append({**base, "epoch": h.get("epoch"), "metric": name,
                                     "value": float(value)})
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, "epoch", "metric", "value"])

    def summary(self, suites: Iterable[str] | str | None = None) -> pd.DataFrame:
        """One row per record: identity, status, error, timings, data sizes, peak memory and
        where it ran (:data:`SUMMARY_COLUMNS`)."""
        rows = []
        for rec in self.records(suites):
            t = rec.timing_s
            data = rec.data or {}
            rows.append({**_identity(rec), "error": rec.error,
                         "total_s": t.get("total"), "fit_s": t.get("fit"),
                         "score_s": t.get("score"), "created": rec.created,
                         "train_images": data.get("train"), "test_images": data.get("test"),
                         "peak_rss_mb": rec.peak_rss_mb, "peak_gpu_mb": rec.peak_gpu_mb,
                         **{k: rec.host.get(k) for k in ("device", "device_name", "cpu_model",
                                                         "cpu_cores", "threads")}})
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, *SUMMARY_COLUMNS])


def _value(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _metric_rows(base: dict[str, Any], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric (one row of metric None for a record without any)."""
    if not metrics:
        return [{**base, "metric": None, "value": float("nan")}]
    return [{**base, "metric": name, "value": _value(value)}
            for name, value in sorted(metrics.items())]


def _mask_size(size: Any) -> str | None:
    """``[H, W]`` as ``WxH`` (how image sizes are written), ``"varies"`` as it is."""
    if isinstance(size, list) and len(size) == 2:
        return f"{size[1]}x{size[0]}"
    return None if size is None else str(size)


def _identity(rec: Record) -> dict[str, Any]:
    job = rec.job
    overrides = job.overrides_dict
    proto = rec.pixel_protocol or {}
    return {
        "suite": job.suite,
        "id": rec.id,
        "method": job.method,
        "variant": variant_label(overrides),
        "overrides": json.dumps(overrides, sort_keys=True),
        "dataset": job.dataset,
        "task": job.task,
        "seed": job.seed,
        "status": rec.status,
        "expert": rec.expert,
        "checkpoint_policy": rec.checkpoint_policy,
        "pixel_resolution": proto.get("resolution"),  # "native" (version 2) or None
        "pixel_model_resolution": proto.get("model_resolution"),
        "pixel_mask_size": _mask_size(proto.get("mask_size")),
        "pixel_thresholds": proto.get("thresholds"),
        "pixel_includes_normal": proto.get("includes_normal_images"),
        "threshold_quantile": (rec.threshold or {}).get("quantile"),
        # None: a record written before score_summary existed (not judged)
        "constant_scores": (None if not rec.score_summary
                            else int(rec.score_summary.get("distinct", 2)) <= 1),
        "config": json.dumps(rec.config or {}, sort_keys=True),
        "setting": job.setting,
        "shots": job.shots,
        "pooled": False,
    }
