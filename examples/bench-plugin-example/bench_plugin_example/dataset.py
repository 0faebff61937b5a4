"""``csv_images``: a folder of images with a CSV of labels.

Layout under the data root::

    <data-root>/csv_images/labels.csv      image,split,label[,task]
    <data-root>/csv_images/<image paths, relative to that folder>

``split`` is ``train`` or ``test``; ``label`` 0 (normal) or 1 (anomalous), and training images
are normal; ``task`` (optional) makes one task per value, else there is one task, ``all``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from bench.core.errors import DataCorruptError, DataMissingError, UsageError
from bench.core.paths import data_root
from bench.datasets.base import (
    DatasetInfo,
    DatasetProtocol,
    InputSpec,
    TaskData,
    build_taskdata,
    read_image,
)

_TASK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CSVImages(DatasetProtocol):
    """Images listed in ``labels.csv`` with their split and label."""

    name = "csv_images"
    family = "csv_images"  # the key of methods' presets
    default_size = 64
    has_masks = False
    info = DatasetInfo(
        title="a folder of images with a CSV of labels (bench-plugin-example)",
        source="<data-root>/csv_images/labels.csv: image,split,label[,task]",
        license="yours",
        size="any",
        obtain="put your images under <data-root>/csv_images and list them in labels.csv",
    )

    # ------------------------------------------------------------------ where, which tasks
    def location(self, root: Path | None) -> Path:
        return Path(root if root is not None else data_root()) / self.name

    def _rows(self, root: Path | None) -> list[dict[str, str]]:
        path = self.location(root) / "labels.csv"
        if not path.is_file():
            raise DataMissingError(f"{self.name} not found: expected {path} with columns "
                                   "image,split,label[,task]")
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for i, row in enumerate(rows, start=2):
            if row.get("split") not in ("train", "test") or row.get("label") not in ("0", "1") \
                    or not row.get("image"):
                raise DataCorruptError(f"{path}, line {i}: expected image, split train|test, "
                                       f"label 0|1; got {row}")
            if row["split"] == "train" and row["label"] == "1":
                raise DataCorruptError(f"{path}, line {i}: training images must be normal")
        return rows

    def tasks_in(self, root: Path | None) -> list[str]:
        return sorted({row.get("task") or "all" for row in self._rows(root)})

    def tasks(self) -> list[str]:
        try:
            return self.tasks_in(None)
        except (DataMissingError, DataCorruptError):
            return []

    def check_task(self, task: str) -> str:
        # tasks are whatever the CSV lists; load() checks that this one is there
        if not _TASK.fullmatch(task):
            raise UsageError(f"bad task name {task!r} for dataset {self.name}")
        return task

    def check_available(self, root: Path | None) -> None:
        if not self.tasks_in(root):
            raise DataMissingError(f"{self.location(root) / 'labels.csv'} lists no image")

    def check_tasks(self, root: Path | None, tasks: Sequence[str]) -> None:
        for task in tasks:
            self._task_rows(root, task)

    def _task_rows(self, root: Path | None, task: str) -> list[dict[str, str]]:
        rows = [r for r in self._rows(root) if (r.get("task") or "all") == task]
        if not rows:
            raise DataMissingError(f"{self.name}: no task {task!r} in "
                                   f"{self.location(root) / 'labels.csv'}; tasks there: "
                                   f"{', '.join(self.tasks_in(root))}")
        for split in ("train", "test"):
            if not any(r["split"] == split for r in rows):
                raise DataMissingError(f"{self.name}/{task}: no {split} image in labels.csv")
        base = self.location(root)
        for r in rows:
            if not (base / r["image"]).is_file():
                raise DataMissingError(f"{self.name}/{task}: image {base / r['image']} listed "
                                       "in labels.csv is missing")
        return rows

    # ------------------------------------------------------------------ loading
    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        rows = self._task_rows(root, task)
        base = self.location(root)
        out = []
        for split in ("train", "test"):
            chosen = [r for r in rows if r["split"] == split]
            images = [read_image(base / r["image"]) for r in chosen]
            out.append(build_taskdata(images, [int(r["label"]) for r in chosen],
                                      spec or InputSpec(), self.default_size,
                                      ids=[r["image"] for r in chosen],
                                      name=f"{self.name}/{task}/{split}"))
        return out[0], out[1]
