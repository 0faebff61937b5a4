"""Run one job, start to finish, and leave exactly one record.

``run_job`` builds everything from the :class:`~bench.records.key.Job` key inside the worker:
the dataset protocol, the method with its resolved config, the data at the size the method asks
for. Any exception, and any NaN score, becomes a ``failed`` record carrying the error; an interrupt
(KeyboardInterrupt, SIGKILL) leaves no record, so the job simply runs again on resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core import environment as env
from bench.core.config import to_plain
from bench.core.errors import UsageError
from bench.core.metrics import (
    DEFAULT_THRESHOLD_QUANTILE,
    TRAIN_THRESHOLD_METRIC,
    evaluate,
    train_quantile_f1,
)
from bench.core.registry import Origin
from bench.datasets import DATASETS
from bench.datasets.base import TaskData
from bench.methods import METHODS
from bench.methods.base import RunContext, Scores
from bench.records.record import ErrorKind, JobSummary, Record, window_rule
from bench.records.store import Store
from bench.run import setting
from bench.run.jobs import Job

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch for one job (the runner's job, never a method's).

    ``deterministic`` also switches torch to its deterministic algorithms (warning, not failing,
    on an op that has none) and cuDNN to deterministic kernels; it is set both ways, since a
    worker process runs many jobs.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic (CUDA >= 10.2)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call costs imports
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def nondeterminism_watch(on: bool) -> Iterator[list[str]]:
    """Collects, while ``on``, the warnings of torch ops that fell back to a nondeterministic
    kernel under ``use_deterministic_algorithms(warn_only=True)`` (each distinct message once,
    first line); other warnings are passed on as they came. The list fills when the block ends.
    """
    fallbacks: list[str] = []
    if not on:
        yield fallbacks
        return
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # a once-only warning of an earlier job counts again
        try:
            yield fallbacks
        finally:
            rest = []
            for w in seen:
                text = str(w.message)
                if "deterministic" in text:
                    line = text.strip().splitlines()[0][:300] if text.strip() else text
                    if line not in fallbacks:
                        fallbacks.append(line)
                else:
                    rest.append(w)
    for w in rest:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def converged_epochs(history: list[dict[str, float]], last: int = 0) -> list[float]:
    """The epochs of the evaluations that count as converged.

    ``last=0`` (the default): the second half of training, epoch >= last evaluated epoch / 2;
    ``last=K``: the last K evaluations.
    """
    epochs = sorted({float(h.get("epoch", 0)) for h in history})
    if not epochs:
        return []
    if last > 0:
        return epochs[-last:]
    return [e for e in epochs if e >= epochs[-1] / 2]


def converged_window(history: list[dict[str, float]], last: int = 0) -> dict[str, Any] | None:
    """What a record stores about the window: its rule and the epochs that entered it."""
    if not history:
        return None
    return {"rule": window_rule(last), "last": last,
            "epochs": [int(e) if float(e).is_integer() else e
                       for e in converged_epochs(history, last)]}


def summarize_history(history: list[dict[str, float]], last: int = 0) -> dict[str, float]:
    """The paper's "average after convergence" and the optimistic best-on-test value.

    For every metric in the history: mean and std over the evaluations in the converged window
    (:func:`converged_epochs`: by default the second half of training, epoch >= last evaluated
    epoch / 2; with ``last=K`` the last K evaluations), and the maximum over all evaluations,
    named ``*_best_on_test_optimistic`` because choosing an epoch on the test set leaks labels.
    """
    if not history:
        return {}
    window = set(converged_epochs(history, last))
    late = [h for h in history if float(h.get("epoch", 0)) in window]
    out: dict[str, float] = {}
    names = sorted({k for h in history for k in h if k != "epoch"})
    for name in names:
        vals = np.array([h[name] for h in late if name in h and h[name] is not None], dtype=float)
        allv = np.array([h[name] for h in history if name in h and h[name] is not None],
                        dtype=float)
        vals, allv = vals[~np.isnan(vals)], allv[~np.isnan(allv)]  # undefined evaluations
        if len(vals):
            out[f"{name}_converged_mean"] = float(np.nanmean(vals))
            out[f"{name}_converged_std"] = float(np.nanstd(vals))
            out[f"{name}_converged_n"] = float(len(vals))
        if len(allv):
            out[f"{name}_best_on_test_optimistic"] = float(np.nanmax(allv))
    return out


def image_scores(data: TaskData, scores: Scores) -> np.ndarray:
    """``scores.image`` as float64, checked: one finite score per image of ``data``."""
    image = np.asarray(scores.image, dtype=np.float64)
    if image.shape != (len(data),):
        raise ValueError(f"score() returned {image.shape} image scores for {len(data)} images")
    if not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise ValueError(f"{bad} image score(s) are NaN or infinite")
    return image


def score_summary(image: np.ndarray) -> dict[str, Any]:
    """The record's ``score_summary``: how many scores, how many distinct, their range."""
    return {"n": int(image.size), "distinct": int(np.unique(image).size),
            "min": float(image.min()), "max": float(image.max())}


def score_metrics(test: TaskData, scores: Scores,
                  extra_map_protocols: Mapping[str, str] | None = None, *,
                  native: bool = True) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Metrics of one scoring pass; raises ValueError on NaN scores or mismatched shapes.

    The standard pixel metrics are scored against ``test.native_masks`` (the dataset's own
    resolution) where the data has them; ``native=False`` (evaluations during training) leaves
    them out and keeps the cheap model-resolution and own-map pixel metrics.

    ``extra_map_protocols`` is the method's declaration (``Method.extra_map_protocols``): which
    metric each of ``scores.extra_maps`` feeds. An extra map it does not declare is an error, not
    silently left out of the metrics.
    """
    image = image_scores(test, scores)
    protocols = extra_map_protocols or {}
    undeclared = sorted(set(scores.extra_maps) - set(protocols))
    if undeclared:
        raise ValueError(f"score() returned extra maps {', '.join(undeclared)} that the method "
                         "declares no protocol for (Method.extra_map_protocols)")
    metric_maps = {protocols[name]: maps for name, maps in scores.extra_maps.items()}
    masks = test.masks.numpy() if test.masks is not None else None
    metrics, protocol = evaluate(test.labels, image, masks, scores.maps, metric_maps,
                                 test.native_masks, native=native)
    if protocol is not None and native:
        protocol["mask_binarization"] = (test.native_masks.binarization
                                         if test.native_masks is not None
                                         else ">= 0.5 of the masks at the model's size (the "
                                              "dataset has no native masks)")
    return metrics, protocol


def _origin(origin: Origin | None) -> dict[str, Any] | None:
    return None if origin is None else origin.as_record()


#: torch.OutOfMemoryError (torch >= 2.5); older releases name it torch.cuda.OutOfMemoryError
_TORCH_OOM: type[BaseException] = getattr(torch, "OutOfMemoryError", None) or \
    torch.cuda.OutOfMemoryError


def error_kind(exc: BaseException) -> ErrorKind:
    """``out_of_memory`` (host or GPU), ``timeout`` or ``exception``."""
    if isinstance(exc, (MemoryError, _TORCH_OOM)):
        return "out_of_memory"
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) and ("out of memory" in text
                                          or "can't allocate memory" in text):
        return "out_of_memory"  # torch's CPU allocator, cuDNN and cuBLAS raise RuntimeError
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "exception"


def new_record(job: Job, *, deterministic: bool = False,
               runner: dict[str, Any] | None = None) -> Record:
    """The record of a job about to run, with what every record has (``failed`` until it
    succeeds)."""
    return Record.new(job, created=env.now_iso(), versions=env.versions(), git=env.git_commit(),
                      deterministic=deterministic, runner=runner)


def summary(job: Job, record: Record) -> JobSummary:
    """What a worker hands back to the runner about a finished job."""
    return record.summary()


def write_failure(job: Job, *, results_root: str | Path, error: str, kind: ErrorKind,
                  device: str, total_s: float, deterministic: bool = False,
                  runner: dict[str, Any] | None = None, detail: str = "") -> JobSummary:
    """Record a job that ended outside ``run_job`` (killed at its timeout, or crashed)."""
    record = new_record(job, deterministic=deterministic, runner=runner).finish(
        host=env.host_info(env.resolve_device(device)), error=error, error_kind=kind,
        traceback=detail, timing_s={"total": total_s}, peak_rss_mb=None, peak_gpu_mb=None)
    Store(results_root).write(record)
    return record.summary()


def run_job(
    job: Job,
    *,
    results_root: str | Path,
    data_root: str | Path | None = None,
    device: str = "auto",
    progress: ProgressFn | None = None,
    deterministic: bool = False,
    runner: dict[str, Any] | None = None,
    threshold_quantile: float | None = DEFAULT_THRESHOLD_QUANTILE,
) -> JobSummary:
    """Run ``job`` and write its record; returns a short summary (id, status, metrics, error).

    ``runner`` (backend, worker, claim) is stored as is in the record. ``threshold_quantile``
    ``q``: after scoring the test set, also score the training set and record the F1 at the
    ``q``-quantile of its scores (metric ``image_f1_at_train_quantile``, field ``threshold``);
    None skips that (and its cost: one more scoring pass, over the training images).
    """
    store = Store(results_root)
    env.retain_freed_memory()  # faster on the CPU, same numbers
    env.release_memory()  # this job's peak RSS is its own
    started = time.perf_counter()
    record = new_record(job, deterministic=deterministic, runner=runner)
    done: dict[str, Any] = {}  # the record's fields, as far as the job got
    timing: dict[str, float] = {}
    dev = env.resolve_device(device)
    memory = env.PeakMemory(device=dev)
    fallbacks: list[str] = []
    try:
        with memory, nondeterminism_watch(deterministic) as fallbacks:
            spec = METHODS.get(job.method)
            dataset = DATASETS.get(job.dataset)
            done.update(plugin=_origin(METHODS.origin(job.method)),
                        dataset_plugin=_origin(DATASETS.origin(job.dataset)))
            method = spec.build(dataset.family, job.overrides_dict)
            done.update(config=to_plain(method.config), host=env.host_info(dev))
            if job.shots is not None and job.shots < method.min_shots:
                raise UsageError(f"few-shot k={job.shots}: {job.method} fits at least "
                                 f"{method.min_shots} training images")
            seed_everything(job.seed, deterministic)

            t0 = time.perf_counter()
            root = Path(data_root) if data_root is not None else None
            data = setting.prepare(job, dataset, root, method.input_spec())
            train, test = data.train, data.test  # what the method sees
            timing["load"] = time.perf_counter() - t0
            done["data"] = data.data
            if data.few_shot is not None:
                done["few_shot"] = data.few_shot

            def evaluate_fn(data: TaskData, scores: Scores) -> dict[str, float]:
                # during training: the cheap metrics (image, model-resolution and own-map
                # pixel metrics), not the native-resolution ones that read every mask file
                return score_metrics(data, scores, method.extra_map_protocols, native=False)[0]

            ctx = RunContext(device=dev, seed=job.seed,
                             cache_dir=Path(results_root) / "cache" / job.id,
                             family=dataset.family, progress=progress, eval_data=test,
                             evaluate=evaluate_fn, deterministic=deterministic)
            t0 = time.perf_counter()
            fitted = method.fit(train, ctx)
            if fitted is not method:
                raise TypeError(f"{type(method).__name__}.fit must return self")
            timing["fit"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            scores = method.score(test, ctx)
            timing["score"] = time.perf_counter() - t0
            # unified: the metrics over the whole test set (pooled); the categories' below
            metrics, protocol = score_metrics(data.test_files, scores, method.extra_map_protocols)
            done["score_summary"] = score_summary(image_scores(test, scores))
            if threshold_quantile is not None:
                t0 = time.perf_counter()
                train_scores = image_scores(train, method.score(train, ctx))
                timing["score_train"] = time.perf_counter() - t0
                metrics[TRAIN_THRESHOLD_METRIC], done["threshold"] = train_quantile_f1(
                    test.labels, scores.image, train_scores, threshold_quantile)
            if data.parts:
                done["category_metrics"] = setting.category_metrics(
                    data, scores, method.extra_map_protocols, done.get("threshold"))
            if setting.wants_corruptions(job):
                t0 = time.perf_counter()
                done["corrupted"] = setting.corruption_metrics(method, data, ctx,
                                                               done.get("threshold"))
                timing["score_corrupted"] = time.perf_counter() - t0
            files = data.test_files
            masks = None if files.masks is None else files.masks.numpy()
            done["artifacts"] = store.write_artifacts(  # ROC curves and overlays need these
                job, files.labels, scores.image, ids=files.ids, maps=scores.maps, masks=masks,
                images=files.images.numpy())
            history = list(method.history_)
            # a method that evaluates during training may declare its window (config field)
            last = int(getattr(method.config, "converged_window", 0) or 0)
            metrics.update(summarize_history(history, last))
            provenance = method.provenance()
            # packages outside bench whose code made the numbers (a plugin wrapping a library)
            done.update(versions={**record.versions, **provenance.get("versions", {})})
            done.update(expert=provenance.get("expert"),
                        checkpoint_policy=provenance.get("checkpoint_policy"),
                        metrics=metrics, pixel_protocol=protocol, history=history,
                        converged_window=converged_window(history, last), status="ok")
    except Exception as exc:  # one failing job never stops the others
        done.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                    error_kind=error_kind(exc), traceback=traceback.format_exc(limit=20))
        log.debug("job %s failed", job.id, exc_info=True)
        if done["error_kind"] == "out_of_memory" and dev.type == "cuda":
            torch.cuda.empty_cache()  # the worker's next job starts with the memory back
    timing["total"] = time.perf_counter() - started
    if fallbacks:  # not deterministic after all: say which ops were not
        done.update(deterministic=False, deterministic_fallbacks=fallbacks)
    record = record.finish(timing_s=timing, peak_rss_mb=memory.peak_rss_mb,
                           peak_gpu_mb=memory.peak_gpu_mb, **done)
    store.write(record)
    env.release_memory()
    return record.summary()
