"""Synthetic records (and artifacts) written through the real store, for aggregation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.records.record import SCHEMA_VERSION, Record
from bench.records.store import Store
from bench.run.jobs import Job

MKD_DEFAULTS: dict[str, Any] = {"layers": ["pool2", "pool3", "pool4", "pool5"],
                                "score_layers": "official", "loss_terms": "total",
                                "cloner": "compact", "lamda": 0.01, "expert_weights": "random",
                                "epochs": 4, "eval_every": 0}


def record(suite: str, method: str, dataset: str, task: str, seed: int,
           metrics: dict[str, float | None], *, overrides: dict[str, Any] | None = None,
           config: dict[str, Any] | None = None, expert: str | None = None,
           history: list[dict[str, float]] | None = None, status: str = "ok",
           pixel_resolution: int | None = None) -> dict[str, Any]:
    job = Job.make(suite, method, dataset, task, seed, overrides or {})
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "id": job.id, "job": job.key(), "status": status,
        "metrics": metrics if status == "ok" else {}, "expert": expert,
        "checkpoint_policy": "final", "config": config or dict(overrides or {}),
        "history": history or [], "created": "2025-01-01T00:00:00+00:00",
        "versions": {"bench": "0.1.0"}, "git": "abc1234",
    }
    if pixel_resolution is not None:
        rec["pixel_protocol"] = {"resolution": "native", "model_resolution": pixel_resolution,
                                 "mask_size": [900, 900], "thresholds": "exact",
                                 "includes_normal_images": True}
    return rec


def mkd_record(suite: str, dataset: str, task: str, seed: int, auroc: float,
               **overrides: Any) -> dict[str, Any]:
    """An MKD-like record: the config is the defaults with ``overrides`` applied."""
    return record(suite, "mkd", dataset, task, seed, {"image_auroc": auroc},
                  overrides=overrides, config={**MKD_DEFAULTS, **overrides},
                  expert="vgg16:random:0")


def write_all(root: Path, records: list[dict[str, Any]] | list[Record]) -> Store:
    store = Store(root)
    for r in records:
        store.write(r if isinstance(r, Record) else Record.from_json(r))
    return store


def demo_results(root: Path) -> Store:
    """A small but complete results folder: methods, seeds, pixel metrics, history, ablation,
    artifacts with maps. Values are chosen so that the expected table cells are easy to check.
    """
    recs: list[dict[str, Any]] = []
    for seed, off in ((0, 0.0), (1, 0.02)):
        for task, base in (("bottle", 0.9), ("screw", 0.7)):
            hist = [{"epoch": e, "image_auroc": base - 0.1 + 0.02 * e} for e in range(0, 6, 2)]
            recs.append(record("demo", "mkd", "mvtec", task, seed,
                               {"image_auroc": base + off, "pixel_auroc": 0.95,
                                "pixel_auroc_mkd": 0.9 + off}, config=dict(MKD_DEFAULTS),
                               expert="vgg16:random:0", history=hist, pixel_resolution=128))
    recs.append(record("demo", "ocsvm", "mvtec", "bottle", 0, {"image_auroc": 0.8}))
    for task, v in (("0", 0.9), ("1", 0.8)):
        recs.append(mkd_record("abl", "digits", task, 0, v))
        for k, layers in enumerate((["pool5"], ["pool4", "pool5"],
                                    ["pool2", "pool3", "pool4", "pool5"])):
            recs.append(mkd_record("abl", "digits", task, 0, v - 0.1 + 0.05 * k,
                                   layers=layers, score_layers="trained"))
        recs.append(mkd_record("abl", "digits", task, 0, v - 0.2, loss_terms="value"))
    store = write_all(root, recs)
    rng = np.random.default_rng(0)
    for rec in recs:
        if rec["job"]["dataset"] == "mvtec" and rec["job"]["method"] == "mkd":
            labels = np.array([0] * 6 + [1] * 6)
            scores = labels + rng.normal(0, 0.6, size=12)
            masks = np.zeros((12, 16, 16), dtype=np.float32)
            masks[6:, 4:9, 5:10] = 1.0
            maps = masks * 3.0 + rng.random((12, 16, 16))
            images = rng.integers(0, 255, size=(12, 3, 16, 16), dtype=np.uint8)
            rec["artifacts"] = store.write_artifacts(Job.from_key(rec["job"]), labels, scores,
                                                     maps=maps, masks=masks, images=images,
                                                     max_maps=4)
            store.write(Record.from_json(rec))
    return store
