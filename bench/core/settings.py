"""The evaluation settings: the axis of the grid beside dataset, task and seed.

- ``one-class`` (the default): one model per task, trained on all of the task's normal images,
  scored on its clean test set. Jobs of this setting keep the key (and id) they had before
  settings existed.
- ``unified``: one model per (method, dataset, seed), trained on the union of every
  category's normal training images and scored on the union of their test sets; the record
  keeps per-category and pooled metrics (UniAD, You et al., NeurIPS 2022; Dinomaly, Guo et al.,
  CVPR 2025). Such a job's task is :data:`UNIFIED_TASK`.
- ``few-shot``: ``k`` training images per task (``shots``), drawn with the job's seed
  (:func:`bench.datasets.settings.few_shot_indices`); the draw is stored in the record.
- ``corrupted``: the one-class model also scores corrupted copies of the test set, five
  ImageNet-C corruptions at severities 1-5 (:mod:`bench.datasets.corruptions`).

See docs/settings.md.
"""

from __future__ import annotations

from typing import Any, Final

from bench.core.errors import UsageError

ONE_CLASS: Final = "one-class"
UNIFIED: Final = "unified"
FEW_SHOT: Final = "few-shot"
CORRUPTED: Final = "corrupted"
#: every setting, the default first
SETTINGS: Final = (ONE_CLASS, UNIFIED, FEW_SHOT, CORRUPTED)
DEFAULT_SETTING: Final = ONE_CLASS
#: the task of a unified job: it covers every category of its dataset
UNIFIED_TASK: Final = "all"
#: the row of a unified table that holds the metrics over the whole test set
POOLED_ROW: Final = "Pooled"
#: shots of the few-shot setting where a suite names none (the k of WinCLIP and RegAD)
DEFAULT_SHOTS: Final = (1, 2, 4, 8)


def check_setting(value: Any, where: str) -> str:
    """``value`` if it is a setting's name, else a one-line :class:`UsageError`."""
    if not isinstance(value, str) or value not in SETTINGS:
        raise UsageError(f"{where}: unknown setting {value!r}; choose from: "
                         f"{', '.join(SETTINGS)}")
    return value


def check_shots(value: Any, where: str) -> int:
    """``value`` as the k of the few-shot setting: an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{where}: shots are integers >= 1 (training images per task), got "
                         f"{value!r}")
    return value


def setting_label(setting: str, shots: int | None = None) -> str:
    """How a setting reads in labels and captions: ``few-shot k=4``, ``unified``."""
    return f"{setting} k={shots}" if setting == FEW_SHOT and shots else setting
