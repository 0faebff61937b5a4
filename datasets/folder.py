"""``folder``: your own images in the MVTec AD layout, any category names.

Two ways to point at them:

- ``folder`` reads ``<data-root>/folder/<category>/...`` (the data root as for every dataset:
  ``--data-root``, ``$BENCH_DATA_ROOT`` or ``~/.cache/bench/data``);
- ``folder:/abs/path`` reads ``/abs/path/<category>/...``. The path is part of the dataset name,
  so it is part of every job's identity: results of two different folders never mix, and a
  suite file can name several folders. The path must be absolute.

Each category (task) is a sub-folder holding ``train/good`` and ``test/<good | defect>``; a
``ground_truth/<defect>/<stem>_mask.<ext>`` tree is optional, but when present every defective
image must have its mask (paired by stem, as for MVTec). Method presets use the ``mvtec``
family; the default size is 128 px.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from bench.core.errors import DataMissingError, UsageError
from bench.core.paths import data_root
from bench.core.registry import Registry
from bench.datasets.base import DatasetInfo, DatasetProtocol, InputSpec, TaskData
from bench.datasets.mvtec import index_mvtec, load_category
from bench.datasets.stored import StoredDataset

PREFIX = "folder:"
_TASK_NAME = re.compile(r"^[^/\\.][^/\\]*$")


class Folder(StoredDataset):
    """MVTec-layout images at ``<data-root>/folder`` or at a fixed absolute path."""

    name = "folder"
    family = "mvtec"
    supports_unified = True
    default_size = 128
    has_masks = True
    fetch_mode = "none"
    layout = "<category>/{train/good, test/<good|defect>[, ground_truth/<defect>]}"
    info = DatasetInfo(
        title="your own images in the MVTec AD layout",
        source="<data-root>/folder/<category>, or name the dataset folder:/abs/path",
        license="yours",
        size="any",
        obtain="put <category>/train/good and <category>/test/<good|defect> folders under "
               "<data-root>/folder, or use the dataset name folder:/abs/path",
    )

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return f"{PREFIX}{self.path}" if self.path is not None else self.name

    def location(self, root: Path | None) -> Path:
        if self.path is not None:
            return self.path
        return Path(root if root is not None else data_root()) / self.name

    def find(self, root: Path | None) -> Path | None:
        loc = self.location(root)
        return loc if loc.is_dir() else None

    def accepts(self, folder: Path) -> bool:
        return folder.is_dir()

    def fetch_hint(self) -> str:
        return "put <category>/train/good and <category>/test/<good|defect> folders there"

    def missing_message(self, root: Path | None) -> str:
        return (f"{self.label} not found: expected {self.location(root)}/{self.layout} "
                "(your own images; see docs/datasets.md)")

    def tasks_in(self, root: Path | None) -> list[str]:
        base = self.require(root)
        return sorted(d.name for d in base.iterdir()
                      if d.is_dir() and (d / "train" / "good").is_dir()
                      and _TASK_NAME.match(d.name))

    def tasks(self) -> list[str]:
        return self.tasks_in(None) if self.find(None) is not None else []

    def check_available(self, root: Path | None) -> None:
        base = self.require(root)
        if not self.tasks_in(root):
            raise DataMissingError(f"{self.label}: no category in {base}: expected "
                                   f"{base}/{self.layout}, images in <category>/train/good")

    def check_tasks(self, root: Path | None, tasks: Sequence[str]) -> None:
        base = self.require(root)
        for task in tasks:
            index_mvtec(self._category(base, task, root), require_masks=False)

    def _category(self, base: Path, task: str, root: Path | None) -> Path:
        """The folder of category ``task`` (with a ``train/good`` folder), or one line naming
        the categories there."""
        folder = base / task
        if not (folder / "train" / "good").is_dir():
            known = ", ".join(self.tasks_in(root)) or "(none)"
            raise DataMissingError(f"category {task!r} not found in {base} (expected "
                                   f"{folder}/train/good); categories there: {known}")
        return folder

    def check_task(self, task: str) -> str:
        # categories are whatever folders the user has; load() checks that this one exists
        if not _TASK_NAME.match(task):
            raise UsageError(f"bad category name {task!r} for dataset {self.label}")
        return task

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        base = self.require(root)
        index = index_mvtec(self._category(base, task, root), require_masks=False)
        with_masks = index.loc[index["label"] == 1, "mask_path"].notna().any()
        return load_category(index, spec or InputSpec(), self.default_size,
                             name=f"{self.label}/{task}", base=base, id_prefix=self.label,
                             masks=bool(with_masks))

    def count(self, base: Path) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.tasks_in(base.parent if self.path is None else None):
            index = index_mvtec(base / task, require_masks=False)
            out[f"{task}/train"] = int((index["split"] == "train").sum())
            out[f"{task}/test"] = int((index["split"] == "test").sum())
        return out


def folder_at(name: str) -> Folder:
    """The ``folder`` dataset for a ``folder:/abs/path`` name."""
    raw = name[len(PREFIX):]
    path = Path(raw)
    if not raw or not path.is_absolute():
        raise UsageError(f"dataset {name!r}: write folder:/absolute/path (the path is part of "
                         "every job's identity, so it must not depend on the working folder)")
    return Folder(path)


class DatasetRegistry(Registry[DatasetProtocol]):
    """The dataset registry; also resolves ``folder:/abs/path`` names to a :class:`Folder`."""

    def get(self, name: str) -> DatasetProtocol:
        if name.startswith(PREFIX):
            return folder_at(name)
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name.startswith(PREFIX):
            return Path(name[len(PREFIX):]).is_absolute()
        return super().__contains__(name)

    def unavailable(self, name: str) -> str | None:
        if name.startswith(PREFIX):  # never an import name: the folder's own message
            try:
                folder_at(name)
            except UsageError as exc:
                return str(exc)
            return None
        return super().unavailable(name)
