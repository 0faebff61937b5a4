"""``mvtec_loco``: MVTec LOCO AD (Bergmann, Batzner, Fauser, Sattlegger, Steger, IJCV 2022),
five categories with **logical** and **structural** anomalies, scored at image level.

Layout (MVTec's archive, extracted into ``<root>/mvtec_loco``; a wrapper folder up to three
levels deep is accepted)::

    <root>/mvtec_loco/<category>/train/good/*.png
    <root>/mvtec_loco/<category>/validation/good/*.png
    <root>/mvtec_loco/<category>/test/{good,logical_anomalies,structural_anomalies}/*.png
    <root>/mvtec_loco/<category>/ground_truth/<type>/<image stem>/000.png [, 001.png ...]

Tasks, three per category (train = ``train/good`` for each; ``validation/good`` is not used):

- ``<category>``: test = ``good`` (label 0) + both anomaly types (label 1);
- ``<category>/logical``: test = ``good`` + ``logical_anomalies`` only;
- ``<category>/structural``: test = ``good`` + ``structural_anomalies`` only.

So the usual per-type AUROCs of LOCO papers are the ``/logical`` and ``/structural`` tasks,
and the plain task is both together. **Image level only**: a LOCO anomaly may have several
masks whose pixel values encode defect-specific saturation thresholds for the dataset's sPRO
metric, which this harness does not compute; pixel metrics are therefore not reported
(``has_masks = False``). Each anomalous image's mask folder is still checked and recorded in
the index (column ``mask_dir``; ``mask_path`` stays ``None``). Images are resized to 128 px by
default (the ``mvtec`` family's presets).

Download: behind MVTec's licence form (CC BY-NC-SA 4.0); ``--accept-license`` downloads the
archive MVTec's page links to (the link and sha256 anomalib ships), or ``--archive FILE``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.errors import DataCorruptError, DataMissingError
from bench.datasets._loading import count_images, list_images
from bench.datasets.base import DatasetInfo
from bench.datasets.mvtec import CategoryDataset, Row, index_frame

CATEGORIES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
#: task suffix -> the test folders of anomalies it holds
VARIANTS = {"": ("logical_anomalies", "structural_anomalies"),
            "logical": ("logical_anomalies",), "structural": ("structural_anomalies",)}
TYPES = VARIANTS[""]


def index_mvtec_loco(category_dir: Path, variant: str = "") -> pd.DataFrame:
    """``path, split, label, defect, mask_path, mask_dir`` of one category for one variant
    (``""``, ``logical`` or ``structural``), sorted by split, defect and file name.

    ``mask_path`` is ``None`` (image level); ``mask_dir`` is ``ground_truth/<type>/<stem>`` for
    anomalies, which must exist and hold at least one mask (else :class:`DataCorruptError`
    naming both), ``None`` for good images.
    """
    train, test = category_dir / "train" / "good", category_dir / "test"
    expected = f"{category_dir}/{{train/good, test/{{good,{','.join(TYPES)}}}}}"
    for needed in (train, test):
        if not needed.is_dir():
            raise DataMissingError(f"{needed} not found (expected {expected})")
    rows: list[Row] = [(str(p), "train", 0, "good", None) for p in list_images(train)]
    mask_dirs: list[str | None] = [None] * len(rows)
    for kind in VARIANTS[variant]:
        if not (test / kind).is_dir():
            continue
        for image in list_images(test / kind):
            masks = category_dir / "ground_truth" / kind / image.stem
            if not (masks.is_dir() and list_images(masks)):
                raise DataCorruptError(f"no masks for test image {image}: expected "
                                       f"{masks}/000.png")
            rows.append((str(image), "test", 1, kind, None))
            mask_dirs.append(str(masks))
    if (test / "good").is_dir():
        good = list_images(test / "good")
        rows += [(str(p), "test", 0, "good", None) for p in good]
        mask_dirs += [None] * len(good)
    frame = index_frame(rows, f"(expected {expected} with image files)", train, test)
    frame["mask_dir"] = mask_dirs
    return frame


class MVTecLOCO(CategoryDataset):
    name = "mvtec_loco"
    categories = CATEGORIES
    has_masks = False
    fetch_mode = "archive"
    layout = "<category>/{train/good, validation/good, test/<good|logical_anomalies|" \
             "structural_anomalies>, ground_truth/<type>/<stem>/000.png}"
    info = DatasetInfo(
        title="MVTec LOCO AD (Bergmann, Batzner, Fauser, Sattlegger, Steger, IJCV 2022)",
        source="https://www.mvtec.com/company/research/datasets/mvtec-loco",
        license="CC BY-NC-SA 4.0 (non-commercial; accept it on MVTec's download page)",
        size="3,644 images in 5 categories (1,772 train, 304 validation, 1,568 test)",
        obtain="licence click-through on MVTec's page, then: bench data fetch mvtec_loco "
               "--accept-license (or --archive FILE)",
    )

    def tasks(self) -> list[str]:
        return [f"{c}/{v}" if v else c for c in self.categories for v in VARIANTS]

    def category_of(self, task: str) -> str:
        return task.partition("/")[0]

    def index_category(self, folder: Path, task: str) -> pd.DataFrame:
        return index_mvtec_loco(folder, task.partition("/")[2])

    def count(self, base: Path) -> dict[str, int]:
        out = self.count_folders(base, {
            "train/good": "train/good", "validation/good": "validation/good",
            "test/good": "test/good", **{f"test/{t}": f"test/{t}" for t in TYPES}})
        out["train"] = sum(v for k, v in out.items() if k.endswith("/train/good"))
        out["validation"] = sum(v for k, v in out.items() if k.endswith("/validation/good"))
        out["test"] = sum(v for k, v in out.items() if "/test/" in k)
        out["ground_truth"] = sum(
            1 for cat in self.categories for t in TYPES
            if (base / cat / "ground_truth" / t).is_dir()
            for d in (base / cat / "ground_truth" / t).iterdir() if d.is_dir() and count_images(d))
        return out

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "MVTec LOCO AD is distributed under CC BY-NC-SA 4.0 behind a licence form:",
            "  1. open https://www.mvtec.com/company/research/datasets/mvtec-loco, accept the "
            "licence and download 'mvtec_loco_anomaly_detection.tar.xz';",
            "  2. bench data fetch mvtec_loco --archive /path/to/mvtec_loco_anomaly_detection"
            f".tar.xz   (checks its sha256 and unpacks it into {loc})",
            "  or, having accepted the licence, let bench download the archive MVTec links to:",
            "     bench data fetch mvtec_loco --accept-license",
            f"  Manual alternative: tar -xJf mvtec_loco_anomaly_detection.tar.xz -C {loc}",
        ])
