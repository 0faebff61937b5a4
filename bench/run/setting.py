"""What a job's setting changes in :func:`bench.run.execute.run_job` (docs/settings.md).

- :func:`prepare` builds the data a job fits and scores: one task's (``one-class``,
  ``corrupted``), ``k`` of its training images drawn from the seed (``few-shot``), or every
  category's joined (``unified``), the method then seeing anonymous copies;
- :func:`category_metrics` splits a unified job's scores by category;
- :func:`corruption_metrics` scores the trained model on the corrupted copies of the test set,
  at the threshold taken from the clean training images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import metrics as M
from bench.core.settings import CORRUPTED, FEW_SHOT, UNIFIED
from bench.datasets import corruptions
from bench.datasets.base import DatasetProtocol, InputSpec, TaskData
from bench.datasets.settings import FEW_SHOT_DRAW, anonymous, few_shot_indices, union
from bench.methods.base import Method, RunContext, Scores
from bench.records.key import Job
from bench.run.select import unified_tasks


@dataclass
class Prepared:
    """A job's data: ``train`` and ``test`` are what the method gets; ``test_files`` is the
    test set with its files' ids (metrics and artifacts); ``parts`` the categories of a unified
    job, each with its test set and its slice of ``test``."""

    train: TaskData
    test: TaskData
    test_files: TaskData
    data: dict[str, Any]
    parts: list[tuple[str, TaskData, slice]] = field(default_factory=list)
    few_shot: dict[str, Any] | None = None


def _sizes(train: TaskData, test: TaskData) -> dict[str, Any]:
    return {"train": len(train), "test": len(test), "test_anomalous": int(test.labels.sum()),
            "image_size": list(test.size), "native_size": list(test.native_size)}


def prepare(job: Job, dataset: DatasetProtocol, root: Path | None,
            spec: InputSpec) -> Prepared:
    """Load what ``job`` fits and scores, as its setting asks."""
    if job.setting == UNIFIED:
        categories = unified_tasks(job, dataset.tasks_in(root))
        for c in categories:
            dataset.check_task(c)
        loaded = [dataset.load(c, root, job.seed, spec) for c in categories]
        train, test, slices = union(loaded, dataset.name)
        data = {**_sizes(train, test),
                "categories": {c: _sizes(tr, te) for c, (tr, te) in
                               zip(categories, loaded, strict=True)}}
        # the method sees the images without their category: name and ids say nothing
        return Prepared(anonymous(train, f"{dataset.name}/train"),
                        anonymous(test, f"{dataset.name}/test"), test, data,
                        [(c, te, s) for c, (_, te), s in zip(categories, loaded, slices,
                                                             strict=True)])
    dataset.check_task(job.task)
    train, test = dataset.load(job.task, root, job.seed, spec)
    few = None
    if job.setting == FEW_SHOT:
        assert job.shots is not None
        idx = few_shot_indices(len(train), job.shots, job.seed, job.dataset, job.task)
        few = {"k": job.shots, "pool": len(train), "indices": [int(i) for i in idx],
               "ids": [train.ids[int(i)] for i in idx], "draw": FEW_SHOT_DRAW}
        train = train.subset(idx)
    return Prepared(train, test, test, _sizes(train, test), few_shot=few)


def _part(scores: Scores, where: slice) -> Scores:
    return Scores(image=np.asarray(scores.image)[where],
                  maps=None if scores.maps is None else np.asarray(scores.maps)[where],
                  extra_maps={k: np.asarray(v)[where] for k, v in scores.extra_maps.items()})


def category_metrics(prepared: Prepared, scores: Scores,
                     protocols: Mapping[str, str] | None,
                     threshold: Mapping[str, Any] | None
                     ) -> dict[str, dict[str, float | None]]:
    """Each category's metrics from its share of a unified job's scores (the pooled ones come
    from the whole set); F1 at the one threshold taken from the joined training images."""
    from bench.run.execute import score_metrics  # execute imports this module

    out: dict[str, dict[str, float | None]] = {}
    for name, test, where in prepared.parts:
        part = _part(scores, where)
        values, _ = score_metrics(test, part, protocols)
        if threshold is not None:
            values[M.TRAIN_THRESHOLD_METRIC] = M.image_f1_at(test.labels, part.image,
                                                             float(threshold["value"]))
        out[name] = {k: None if isinstance(v, float) and np.isnan(v) else v
                     for k, v in values.items()}
    return out


def corruption_metrics(method: Method, prepared: Prepared, ctx: RunContext,
                       threshold: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record's ``corrupted`` field: the model scores every corrupted copy of the test set;
    image AUROC and AP and F1 at the clean training images' threshold (when the run took one)
    per (corruption, severity). The copies carry no masks: image metrics only, and methods that
    make maps only for masked data (MKD's gradient maps) skip them."""
    from bench.run.execute import image_scores  # execute imports this module

    test = prepared.test
    unmasked = TaskData(test.images, test.labels, None, test.ids, native_size=test.native_size,
                        name=test.name)
    rows = []
    for name in corruptions.CORRUPTIONS:
        for severity in corruptions.SEVERITIES:
            copy = corruptions.corrupted(unmasked, name, severity, ctx.seed)
            scores = method.score(copy, ctx)
            image = image_scores(copy, scores)
            row: dict[str, Any] = {"corruption": name, "severity": severity,
                                   "image_auroc": M.image_auroc(test.labels, image),
                                   "image_ap": M.image_ap(test.labels, image)}
            if threshold is not None:
                row[M.TRAIN_THRESHOLD_METRIC] = M.image_f1_at(test.labels, image,
                                                              float(threshold["value"]))
            rows.append({k: (None if isinstance(v, float) and np.isnan(v) else v)
                         for k, v in row.items()})
    return {"protocol": corruptions.protocol(), "metrics": rows}


def wants_corruptions(job: Job) -> bool:
    return job.setting == CORRUPTED
