"""The record: what one job produced and everything needed to trace its numbers.

One typed :class:`Record` per job, built here and nowhere else (:meth:`Record.new` before a job
runs, :meth:`Record.finish` once it ends), serialized by :meth:`Record.to_json` and read back by
:meth:`Record.from_json`, which checks the schema. Every field is documented in
``results/README.md``.

**Schema version 2** (:data:`SCHEMA_VERSION`). A field added later keeps the version; a field
renamed or removed bumps it, and :meth:`Record.from_json` then migrates older records (or says
in one line how to): version-1 records load through :func:`upgrade`. Records written before this
module existed (main at 764a8e8 and earlier) are version 1 and load that way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from bench.core.errors import UsageError
from bench.records.key import Job, variant_label

#: 2: the standard pixel metrics are scored at the masks' own resolution; a version-1 record's
#: ``pixel_auroc``/``pixel_aupro`` were scored at the model's size and are read as
#: ``pixel_auroc_model_res``/``pixel_aupro_model_res`` (:func:`upgrade`)
SCHEMA_VERSION = 2
#: the model-resolution pixel metrics of version 1, under their version-2 names
_V1_PIXEL_NAMES = {"pixel_auroc": "pixel_auroc_model_res", "pixel_aupro": "pixel_aupro_model_res"}


def upgrade(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored record in the current schema: a version-1 record's pixel metrics (scored at the
    model's input size, ``pixel_protocol.resolution`` an int) get the names that say so, and
    its protocol the fields of version 2. Other versions pass unchanged (and are refused)."""
    if data.get("schema_version") != 1:
        return data
    out = dict(data, schema_version=2)
    proto = data.get("pixel_protocol")
    if isinstance(proto, Mapping) and isinstance(proto.get("resolution"), int):
        out["pixel_protocol"] = {**proto, "resolution": None,
                                 "model_resolution": proto["resolution"]}
        metrics = data.get("metrics")
        if isinstance(metrics, Mapping):
            out["metrics"] = {_V1_PIXEL_NAMES.get(k, k): v for k, v in metrics.items()}
    return out

Status = Literal["ok", "failed"]
#: ``exception`` (raised), ``out_of_memory``, ``timeout`` (killed at ``--timeout``), ``crashed``
#: (its process died)
ErrorKind = Literal["exception", "out_of_memory", "timeout", "crashed"]
#: fields of :func:`bench.core.environment.host_info`, stored at the record's top level
HOST_FIELDS = ("host", "device", "device_name", "cpu_model", "cpu_cores", "threads", "pid",
               "cuda", "cudnn")


class RecordError(ValueError):
    """A record file that does not follow the schema (the reason is the message)."""


@dataclass(frozen=True, kw_only=True)
class Record:
    """One job's outcome and provenance (``results/README.md`` documents every field)."""

    job: Job
    status: Status = "failed"
    error: str | None = None
    error_kind: ErrorKind | None = None
    #: the last frames of the traceback, or the tail of a killed job process's output
    traceback: str | None = None
    created: str = ""
    versions: dict[str, Any] = field(default_factory=dict)
    git: str | None = None
    #: True only when torch's deterministic algorithms were on and no op fell back
    deterministic: bool = False
    #: the warnings of the ops that fell back to a nondeterministic kernel (``deterministic``
    #: is then False); absent when none did
    deterministic_fallbacks: list[str] | None = None
    #: backend, worker, slot, scheduler, claim token
    runner: dict[str, Any] = field(default_factory=dict)
    #: where it ran (:data:`HOST_FIELDS`)
    host: dict[str, Any] = field(default_factory=dict)
    #: the method's fully resolved config
    config: dict[str, Any] | None = None
    #: identity of the pretrained weights used, None for methods without any
    expert: str | None = None
    #: which model produced ``metrics`` (``final``: the last epoch)
    checkpoint_policy: str | None = None
    #: the method's plugin, ``{"distribution", "version", "object"}``; None (absent) when the
    #: method is built in
    plugin: dict[str, Any] | None = None
    #: the dataset's plugin, the same way
    dataset_plugin: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    pixel_protocol: dict[str, Any] | None = None
    #: what defines ``image_f1_at_train_quantile``: the quantile of the training images' scores
    #: taken as the threshold and its value (absent when the run did not score the training set)
    threshold: dict[str, Any] | None = None
    #: the test images' scores in brief: ``n``, ``distinct`` (values), ``min``, ``max``; a
    #: detector with one distinct score is degenerate (:mod:`bench.report.degenerate`)
    score_summary: dict[str, Any] | None = None
    #: unified setting: each category's metrics, from its share of the scores of the one model
    #: (``metrics`` then holds the pooled metrics, over the whole test set)
    category_metrics: dict[str, dict[str, float | None]] | None = None
    #: few-shot setting: ``k``, ``pool`` (training images drawn from), ``indices`` (sorted,
    #: into the task's training set), ``ids`` (their file ids) and ``draw`` (how, in words)
    few_shot: dict[str, Any] | None = None
    #: corrupted setting: ``protocol`` (library, definition, parameters per severity) and
    #: ``metrics``, one object per (corruption, severity) with its metric values
    corrupted: dict[str, Any] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    #: the evaluations of ``history`` that the ``*_converged_*`` metrics cover: ``rule`` (in
    #: words), ``last`` (0: second half of training; K: the last K evaluations), ``epochs``
    converged_window: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    timing_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    # ------------------------------------------------------------------ building
    @staticmethod
    def new(job: Job, *, created: str, versions: Mapping[str, Any], git: str | None,
            deterministic: bool = False, runner: Mapping[str, Any] | None = None) -> Record:
        """The record of a job about to run: ``failed`` until it succeeds."""
        return Record(job=job, created=created, versions=dict(versions), git=git,
                      deterministic=deterministic, runner=dict(runner or {}))

    def finish(self, *, timing_s: Mapping[str, float], peak_rss_mb: float | None,
               peak_gpu_mb: float | None, **fields: Any) -> Record:
        """The record once the job ended: ``fields`` are any of the record's fields.

        NaN metrics become None (JSON has no NaN; a metric that is undefined reads as null).
        """
        if "metrics" in fields:
            fields["metrics"] = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                 for k, v in fields["metrics"].items()}
        return dataclasses.replace(
            self, timing_s={k: round(float(v), 4) for k, v in timing_s.items()},
            peak_rss_mb=None if peak_rss_mb is None else round(peak_rss_mb, 1),
            peak_gpu_mb=None if peak_gpu_mb is None else round(peak_gpu_mb, 1), **fields)

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``<job_id>.json``."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "id": self.id,
                               "job": self.job.key()}
        for f in dataclasses.fields(self):
            if f.name in ("job", "host"):
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL_KEYS and value is None:
                continue  # absent in records of jobs that never got that far
            out[f.name] = value
        out.update(self.host)
        return out

    @staticmethod
    def from_json(data: Any) -> Record:
        """Check and read a stored record; raises :class:`RecordError` saying what is wrong."""
        if not isinstance(data, Mapping):
            raise RecordError(f"a record is a JSON object, not {type(data).__name__}")
        data = upgrade(data)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"schema version {version!r}, this bench reads "
                              f"{SCHEMA_VERSION}: rerun the job, or read it with the bench "
                              f"version that wrote it (versions.bench)")
        key = data.get("job")
        if not isinstance(key, Mapping):
            raise RecordError("its 'job' is not an object")
        missing = [k for k in ("suite", "method", "dataset", "task", "seed") if k not in key]
        if missing:
            raise RecordError(f"its job lacks {', '.join(missing)}")
        wrong = [k for k, kinds in _JOB_TYPES.items() if isinstance(key[k], bool)
                 or not isinstance(key[k], kinds)]
        if wrong or not isinstance(key.get("overrides") or {}, Mapping):
            raise RecordError(f"its job's {', '.join(wrong or ['overrides'])} are of the wrong "
                              "type")
        try:
            job = Job.from_key(key)
        except (TypeError, ValueError, UsageError) as exc:
            raise RecordError(f"its job is malformed ({exc})") from None
        if data.get("id") != job.id:
            raise RecordError(f"its id {data.get('id')!r} is not its job's ({job.id})")
        status = data.get("status")
        if status not in get_args(Status):
            raise RecordError(f"unknown status {status!r}")
        metrics = data.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            raise RecordError("its 'metrics' is not an object")
        bad = [k for k, v in metrics.items() if v is not None and not _is_number(v)]
        if bad:
            raise RecordError(f"non-numeric metric(s): {', '.join(map(str, bad))}")
        history = data.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, Mapping) for h in history):
            raise RecordError("its 'history' is not a list of objects")
        if not all(v is None or _is_number(v) for h in history for v in h.values()):
            raise RecordError("its 'history' holds values that are not numbers")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(Record):
            if f.name in ("job", "host") or f.name not in data:
                continue
            values[f.name] = data[f.name]
        for name in _OBJECTS:
            if not isinstance(values.get(name) or {}, Mapping):
                raise RecordError(f"its '{name}' is not an object")
        for name in _TEXTS:
            if values.get(name) is not None and not isinstance(values[name], str):
                raise RecordError(f"its '{name}' is not a text")
        numbers = [*((values.get("timing_s") or {}).values()), *(
            values[n] for n in ("peak_rss_mb", "peak_gpu_mb") if values.get(n) is not None)]
        if not all(_is_number(v) for v in numbers):
            raise RecordError("its timings or peak memory are not numbers")
        per_category = values.get("category_metrics")
        if per_category is not None and not (isinstance(per_category, Mapping) and all(
                isinstance(m, Mapping) and all(v is None or _is_number(v) for v in m.values())
                for m in per_category.values())):
            raise RecordError("its 'category_metrics' is not an object of metric objects")
        values.update(metrics={str(k): None if v is None else float(v)
                               for k, v in metrics.items()},
                      history=[dict(h) for h in history],
                      error_kind=cast("ErrorKind | None", data.get("error_kind")))
        host = {k: data[k] for k in HOST_FIELDS if k in data}
        return Record(job=job, host=host, **{k: v for k, v in values.items() if v is not None
                                             or k in _NULLABLE})

    # ------------------------------------------------------------------ views
    def plugin_label(self) -> str | None:
        """``distribution version`` of the method's plugin (None: a built-in method)."""
        return plugin_label(self.plugin)

    def summary(self) -> JobSummary:
        """What a worker hands back to the runner about this job."""
        return JobSummary(id=self.id, label=self.job.label(), method=self.job.method,
                          variant=variant_label(self.job.overrides_dict),
                          dataset=self.job.dataset, task=self.job.task, seed=self.job.seed,
                          status=self.status, error=self.error, error_kind=self.error_kind,
                          metrics=dict(self.metrics),
                          total_s=float(self.timing_s.get("total", 0.0)),
                          setting=self.job.setting_label)


def plugin_label(plugin: Mapping[str, Any] | None) -> str | None:
    """A record's ``plugin`` field in words: ``bench-plugin-example 0.1.0``, or the imported
    object for code that is not installed; None for none."""
    if not plugin:
        return None
    dist, version = plugin.get("distribution"), plugin.get("version")
    if not dist:
        return str(plugin.get("object"))
    return f"{dist} {version}" if version else str(dist)


def plugin_labels(records: Iterable[Record]) -> dict[str, str]:
    """Method name -> its plugin's ``distribution version`` in these records (versions joined
    when they differ), for the methods that come from a plugin."""
    seen: dict[str, set[str]] = {}
    for rec in records:
        label = rec.plugin_label()
        if label is not None:
            seen.setdefault(rec.job.method, set()).add(label)
    return {m: ", ".join(sorted(labels)) for m, labels in seen.items()}


def window_rule(last: int = 0) -> str:
    """The converged window of a history (``converged_window`` of a config and a record) in
    words, as records and captions state it: 0 = the second half of training, K = the last K
    evaluations."""
    if last > 0:
        return f"last {last} evaluation{'s' if last > 1 else ''}"
    return "second half of training (epoch >= last evaluated epoch / 2)"


#: the types of a record's job fields, and of its other fields that readers use
_JOB_TYPES: dict[str, tuple[type, ...]] = {"suite": (str,), "method": (str,), "dataset": (str,),
                                           "task": (str, int), "seed": (int,)}
_OBJECTS = ("versions", "runner", "timing_s", "plugin", "dataset_plugin", "threshold", "config",
            "data", "pixel_protocol", "converged_window", "artifacts", "score_summary",
            "few_shot", "corrupted")
_TEXTS = ("error", "error_kind", "traceback", "created", "git", "expert", "checkpoint_policy")


def _is_number(v: Any) -> bool:
    """A JSON number a float can hold (a huge integer cannot)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        float(v)
    except OverflowError:
        return False
    return True


#: written only when known (a job that failed early has no config, data, artifacts, ...)
_OPTIONAL_KEYS = ("config", "data", "artifacts", "traceback", "plugin", "dataset_plugin",
                  "converged_window", "threshold", "deterministic_fallbacks", "score_summary",
                  "category_metrics", "few_shot", "corrupted")
#: may be stored as null and read back as None
_NULLABLE = ("error", "error_kind", "traceback", "git", "config", "expert", "checkpoint_policy",
             "data", "pixel_protocol", "artifacts", "peak_rss_mb", "peak_gpu_mb", "plugin",
             "dataset_plugin", "converged_window", "threshold", "deterministic_fallbacks",
             "score_summary", "category_metrics", "few_shot", "corrupted")


@dataclass(frozen=True)
class JobSummary:
    """A finished job as the runner reports it (the record holds the rest)."""

    id: str
    label: str
    method: str
    variant: str
    dataset: str
    task: str
    seed: int
    status: Status
    error: str | None
    error_kind: ErrorKind | None
    metrics: dict[str, float | None]
    total_s: float
    #: the job's setting as it reads (``few-shot k=4``)
    setting: str = "one-class"

    @property
    def ok(self) -> bool:
        return self.status == "ok"
