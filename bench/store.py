"""The result store: one JSON record per job, written atomically; the only reader and writer.

Layout: ``<root>/runs/<suite>/<job_id>.json``, plus small per-job artifacts in
``<root>/runs/<suite>/<job_id>/`` (``scores.npz``: every test image's score and label;
``maps.npz``: a few anomaly maps at float16 with their images and masks) for ROC curves and
localization overlays. Every file is written to a temporary file in the same folder, flushed and
fsync-ed, then moved into place with ``os.replace``, so a reader (or a runner killed midway) never
sees half a file. Fields and files are documented in ``results/README.md``.

The store is also the only state runners share, so it holds the claims that keep two runners
(processes, or workers on several machines over a shared filesystem) from running the same job:
``<job_id>.claim`` next to the record (see :meth:`Store.claim`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import psutil

from bench.jobs import Job, variant_label

SCHEMA_VERSION = 1
CLAIM_SUFFIX = ".claim"
#: seconds without a refresh after which a claim is taken over (``bench run --claim-timeout``)
DEFAULT_CLAIM_TIMEOUT = 600.0
log = logging.getLogger(__name__)

#: columns of the tidy (long) frame returned by :meth:`Store.load`
ID_COLUMNS = ["suite", "id", "method", "variant", "overrides", "dataset", "task", "seed",
              "status", "expert", "checkpoint_policy", "pixel_resolution",
              "pixel_includes_normal", "config"]
#: at most this many anomaly maps (with their images and masks) are kept per job
MAX_ARTIFACT_MAPS = 8
SCORES_FILE = "scores.npz"
MAPS_FILE = "maps.npz"


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through ``write`` into a temporary sibling, fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Artifacts:
    """Per-job arrays kept next to a record (see ``results/README.md``)."""

    labels: np.ndarray                    # [N] int, 1 = anomaly
    scores: np.ndarray                    # [N] float64, higher = more anomalous
    ids: np.ndarray                       # [N] str, the test images' ids
    map_index: np.ndarray | None = None   # [K] indices into the test set of the kept maps
    maps: np.ndarray | None = None        # [K, H, W] float32 (stored as float16 x scale)
    masks: np.ndarray | None = None       # [K, H, W] float32 in [0, 1]
    images: np.ndarray | None = None      # [K, C, H, W] uint8, as the method saw them


def pick_examples(labels: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of at most ``n`` test images to keep maps of: half anomalies, half normals.

    Within each class the images are ordered by score and taken at evenly spaced ranks, so the
    kept set shows the best and worst detections, not only flattering ones. Deterministic.
    """
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    picked: list[np.ndarray] = []
    groups = [np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)]
    quota = [min(len(groups[0]), (n + 1) // 2)]
    quota.append(min(len(groups[1]), n - quota[0]))
    quota[0] = min(len(groups[0]), n - quota[1])
    for idx, k in zip(groups, quota, strict=True):
        if k <= 0:
            continue
        ordered = idx[np.argsort(-scores[idx], kind="stable")]
        picked.append(ordered[np.unique(np.linspace(0, len(ordered) - 1, k).round().astype(int))])
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


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
        text = json.dumps(record, indent=1, sort_keys=True, allow_nan=True) + "\n"
        _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
        return path

    def artifact_dir(self, suite: str, job_id: str) -> Path:
        return self.suite_dir(suite) / job_id

    def write_artifacts(
        self,
        job: Job,
        labels: np.ndarray,
        scores: np.ndarray,
        *,
        ids: Iterable[str] | None = None,
        maps: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        images: np.ndarray | None = None,
        max_maps: int = MAX_ARTIFACT_MAPS,
    ) -> dict[str, Any]:
        """Save the job's per-image scores and a few maps; returns the record's ``artifacts``.

        Maps are divided by their largest absolute value and stored as float16 (the scale is
        stored beside them), so any score range survives the reduced precision.
        """
        labels = np.asarray(labels).ravel().astype(np.int8)
        scores = np.asarray(scores, dtype=np.float64).ravel()
        id_arr = np.asarray(list(ids) if ids is not None else [str(i) for i in range(len(labels))],
                            dtype=str)
        folder = self.artifact_dir(job.suite, job.id)
        _atomic_write(folder / SCORES_FILE,
                      lambda fh: np.savez_compressed(fh, labels=labels, scores=scores, ids=id_arr))
        out: dict[str, Any] = {"scores": SCORES_FILE, "maps": None, "n_maps": 0}
        if maps is not None and max_maps > 0:
            index = pick_examples(labels, scores, max_maps)
            kept = np.asarray(maps, dtype=np.float64)[index]
            scale = float(np.abs(kept).max()) if kept.size else 1.0
            scale = scale if np.isfinite(scale) and scale > 0 else 1.0
            arrays: dict[str, np.ndarray] = {"index": index,
                                             "maps": (kept / scale).astype(np.float16),
                                             "scale": np.float64(scale)}
            if masks is not None:
                arrays["masks"] = np.asarray(masks, dtype=np.float16)[index]
            if images is not None:
                arrays["images"] = np.asarray(images, dtype=np.uint8)[index]
            _atomic_write(folder / MAPS_FILE,
                          lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]
            out.update(maps=MAPS_FILE, n_maps=len(index))
        return out

    def read_artifacts(self, suite: str, job_id: str) -> Artifacts | None:
        """The artifacts of a job, or None when the job saved none (or they are unreadable)."""
        folder = self.artifact_dir(suite, job_id)
        try:
            with np.load(folder / SCORES_FILE) as z:
                art = Artifacts(labels=z["labels"].astype(np.int64), scores=z["scores"],
                                ids=z["ids"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable artifacts in %s: %s", folder, exc)
            return None
        try:
            with np.load(folder / MAPS_FILE) as z:
                art.map_index = z["index"]
                art.maps = z["maps"].astype(np.float32) * np.float32(z["scale"])
                art.masks = z["masks"].astype(np.float32) if "masks" in z else None
                art.images = z.get("images")
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable maps in %s: %s", folder, exc)
        return art

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

    def fingerprint(self, job: Job) -> str | None:
        """Identifies the record file now on disk (None if absent): a rewrite changes it."""
        try:
            st = self.path(job).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    # ------------------------------------------------------------------ claims
    def claim_path(self, job: Job) -> Path:
        return self.suite_dir(job.suite) / f"{job.id}{CLAIM_SUFFIX}"

    def claim(self, job: Job, *, timeout: float = DEFAULT_CLAIM_TIMEOUT,
              info: Mapping[str, Any] | None = None,
              gone: Callable[[dict[str, Any]], bool] | None = None) -> Claim | None:
        """Claim ``job`` for this process before running it; None if a live runner holds it.

        The claim file is created with ``O_CREAT | O_EXCL``, so of several runners exactly one
        wins, on one machine or on a shared filesystem whose exclusive create is atomic (local
        disks, NFSv3 and later, Lustre, GPFS). A claim is stale, and taken over, when its file
        was not refreshed for ``timeout`` seconds, or when it was made on this host by a process
        that no longer exists (a runner killed with SIGKILL), or when ``gone(content)`` says its
        holder is dead (a Dask worker its scheduler has lost).
        """
        path = self.claim_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        body = {**(info or {}), "job_id": job.id, "token": uuid.uuid4().hex, "host": _HOST,
                "pid": pid, "pid_started": _started(pid), "claimed": time.time()}
        for _ in range(8):  # each round wins, finds a live holder, or breaks a stale claim
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = _Held.inspect(path, timeout)
                if held is None:
                    continue  # released meanwhile
                if not held.stale and not (gone is not None and held.info and gone(held.info)):
                    return None
                _break(path, held, timeout)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(body, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            return Claim(path=path, token=body["token"], info=body)
        return None

    def refresh(self, claim: Claim) -> bool:
        """Touch our claim so that it stays live; False if it is no longer ours."""
        if _read_claim(claim.path).get("token") != claim.token:
            return False
        try:
            os.utime(claim.path)
        except FileNotFoundError:
            return False
        return True

    def release(self, claim: Claim) -> None:
        """Remove our claim (and nobody else's)."""
        if _read_claim(claim.path).get("token") == claim.token:
            claim.path.unlink(missing_ok=True)

    def abandoned(self, job: Job) -> bool:
        """Whether ``job`` is claimed by a process of this host that no longer exists (a worker
        that crashed, or was killed, while running it)."""
        held = _Held.inspect(self.claim_path(job), float("inf"))
        return held is not None and bool(held.info) and _dead_here(held.info)

    def claims(self, suite: str, timeout: float = DEFAULT_CLAIM_TIMEOUT) -> list[dict[str, Any]]:
        """Every claim file of ``suite``: its content plus ``age_s`` and ``stale``."""
        out = []
        d = self.suite_dir(suite)
        for path in sorted(d.glob(f"*{CLAIM_SUFFIX}")) if d.is_dir() else []:
            held = _Held.inspect(path, timeout)
            if held is not None:
                out.append({**held.info, "job_id": path.name[: -len(CLAIM_SUFFIX)],
                            "age_s": held.age, "stale": held.stale})
        return out

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

    def load_history(self, suites: Iterable[str] | str | None = None) -> pd.DataFrame:
        """Per-evaluation training history, tidy: identity columns, ``epoch``, metric, value."""
        rows: list[dict[str, Any]] = []
        for rec in self.records(suites):
            if rec.get("status") != "ok":
                continue
            base = _identity(rec)
            for h in rec.get("history") or []:
                for name, value in h.items():
                    if name != "epoch" and value is not None:
                        rows.append({**base, "epoch": h.get("epoch"), "metric": name,
                                     "value": float(value)})
        return pd.DataFrame(rows, columns=[*ID_COLUMNS, "epoch", "metric", "value"])

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
        "pixel_includes_normal": proto.get("includes_normal_images"),
        "config": json.dumps(rec.get("config") or {}, sort_keys=True),
    }


# ---------------------------------------------------------------------- claims (private plumbing)
_HOST = socket.gethostname()


@dataclass(frozen=True)
class Claim:
    """A job held by this process; keep it live with ``Store.refresh``, end it with ``release``."""

    path: Path
    token: str
    info: dict[str, Any]


def _started(pid: int) -> float | None:
    """Start time of a process, to tell a live holder from a new process that reused its pid."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _dead_here(info: Mapping[str, Any]) -> bool:
    """Whether the claim was made on this host by a process that is gone."""
    if info.get("host") != _HOST or not isinstance(info.get("pid"), int):
        return False
    started = _started(info["pid"])
    if started is None:
        return True
    recorded = info.get("pid_started")
    return recorded is not None and abs(started - float(recorded)) > 1.0


def _read_claim(path: Path) -> dict[str, Any]:
    """The claim's content; ``{}`` when absent or not yet fully written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class _Held:
    inode: int
    mtime_ns: int
    info: dict[str, Any]
    age: float
    stale: bool

    @staticmethod
    def inspect(path: Path, timeout: float) -> _Held | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        info = _read_claim(path)
        age = max(0.0, time.time() - st.st_mtime)
        # an unreadable claim is one being written: live until it times out
        stale = age > timeout or (bool(info) and _dead_here(info))
        return _Held(st.st_ino, st.st_mtime_ns, info, age, stale)

    def same_as(self, other: _Held | None) -> bool:
        """The very claim file seen before, not refreshed since (inodes can be reused: the
        content, holding a random token, tells two claims apart)."""
        return (other is not None and other.inode == self.inode
                and other.mtime_ns == self.mtime_ns and other.info == self.info)


def _break(path: Path, held: _Held, timeout: float) -> None:
    """Remove the stale claim ``held``, and never a fresh claim made since it was inspected.

    Breakers serialize on ``<claim>.break``, created exclusively: the one holding it inspects the
    claim again and removes it only if it is still the very file judged stale; the others leave it
    to that one (their next exclusive create finds the job claimed again, by whoever got it). A
    break lock left by a runner killed in that instant is removed once older than ``timeout``.
    """
    lock = path.with_name(path.name + ".break")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > timeout:
                lock.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return
    os.close(fd)
    try:
        if held.same_as(_Held.inspect(path, timeout)):
            path.unlink(missing_ok=True)
            log.info("took over stale claim %s (%s)", path.name, held.info or "unreadable")
    finally:
        lock.unlink(missing_ok=True)
