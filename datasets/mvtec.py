"""``mvtec``: MVTec AD (Bergmann et al., CVPR 2019), one task per category, detection and
localization from the same job.

Layout (as MVTec distributes it, extracted into ``<root>/mvtec``)::

    <root>/mvtec/<category>/train/good/*.png
    <root>/mvtec/<category>/test/<defect | good>/*.png
    <root>/mvtec/<category>/ground_truth/<defect>/<stem>_mask.png

Task ``<category>``: train = ``train/good``; test = every image under ``test/`` (``good`` label 0,
every defect folder label 1), each defective image paired **by file stem** with its mask and each
good image given an all-zero mask. So one job yields image AUROC and the pixel metrics; nothing
needs deleting. (The official MKD code asks users to delete ``test/good`` before its localization
test, which breaks its detection test; that is not needed here. The MKD-code pixel protocol,
defective images only, is computed from the same scores by ``bench.core.metrics``.)

Images are resized to 128 px (bilinear) by default, as in the paper; masks follow bilinearly
(soft borders; the standard pixel metrics binarize them at 0.5).

Download: the archive is behind MVTec's licence (CC BY-NC-SA 4.0, non-commercial). ``bench data
fetch mvtec`` prints the steps; after accepting the licence, ``--accept-license`` downloads the
archive MVTec's download page links to (5.26 GB, sha256 in ``manifests/mvtec.json``, the checksum
anomalib also ships), or ``--archive FILE`` unpacks one you downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd

from bench.core.errors import DataCorruptError, DataMissingError
from bench.datasets._loading import count_images, is_image, list_images, taskdata_from_index
from bench.datasets.base import DatasetInfo, InputSpec, TaskData
from bench.datasets.stored import StoredDataset

#: The 15 categories, in the order of the MKD paper's Tables 3 and 4 (so tables line up).
CATEGORIES = ("bottle", "hazelnut", "capsule", "metal_nut", "leather", "pill", "wood", "carpet",
              "tile", "grid", "cable", "transistor", "toothbrush", "screw", "zipper")
#: MVTec AD's own grouping (Bergmann et al., Table 1).
TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
OBJECTS = ("bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush",
           "transistor", "zipper")
MASK_SUFFIX = "_mask"
INDEX_COLUMNS = ("path", "split", "label", "defect", "mask_path")
#: one index row: path, split, label (0 normal, 1 anomalous), defect, mask path or None
Row = tuple[str, str, int, str, str | None]


def masks_by_stem(folder: Path, suffix: str = MASK_SUFFIX) -> dict[str, Path]:
    """``{image stem: mask path}`` for the ``<stem><suffix>.<ext>`` files of ``folder`` (empty
    when it does not exist); an image file not named so is an error."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_image(p)):
        if not path.stem.endswith(suffix):
            raise DataCorruptError(f"{path}: a ground-truth file must be named "
                                   f"<image stem>{suffix}{path.suffix}")
        out[path.stem[: len(path.stem) - len(suffix)]] = path
    return out


def paired_rows(folder: Path, gt_folder: Path, defect: str, suffix: str = MASK_SUFFIX,
                split: str = "test") -> list[Row]:
    """One row per image of ``folder`` (label 1), each paired **by file stem** with its mask
    ``gt_folder/<stem><suffix>.<ext>``. An image without its mask, or a mask without its image,
    raises :class:`DataCorruptError` naming both files."""
    masks = masks_by_stem(gt_folder, suffix)
    rows: list[Row] = []
    for image in list_images(folder):
        mask = masks.pop(image.stem, None)
        if mask is None:
            expected = gt_folder / f"{image.stem}{suffix}.png"
            raise DataCorruptError(f"no mask for test image {image}: expected {expected}")
        rows.append((str(image), split, 1, defect, str(mask)))
    if masks:
        stem, mask = next(iter(masks.items()))
        raise DataCorruptError(f"mask {mask} has no test image: expected {folder / stem}.png")
    return rows


def index_frame(rows: list[Row], layout: str, train_dir: Path, test_dir: Path) -> pd.DataFrame:
    """The index DataFrame of ``rows``; a split without images raises naming ``layout``."""
    frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    if not (frame["split"] == "train").any():
        raise DataMissingError(f"{train_dir} holds no images {layout}")
    if not (frame["split"] == "test").any():
        raise DataMissingError(f"{test_dir} holds no images {layout}")
    return frame


def index_mvtec(category_dir: Path, *, require_masks: bool = True) -> pd.DataFrame:
    """The files of one category as a DataFrame: ``path, split, label, defect, mask_path``.

    Pure (reads folder listings only, never images) and sorted (split, defect, file name).
    Defective test images are paired with ``ground_truth/<defect>/<stem>_mask.*`` by stem; an
    image without its mask, or a mask without its image, raises :class:`DataCorruptError`
    naming both files. ``mask_path`` is ``None`` for good images (zero masks). With
    ``require_masks=False`` (user folders) a category without a ``ground_truth`` folder is
    indexed without masks; one that has the folder is paired strictly.
    """
    train_good = category_dir / "train" / "good"
    test = category_dir / "test"
    for needed in (train_good, test):
        if not needed.is_dir():
            raise DataMissingError(f"{needed} not found (expected "
                                   f"{category_dir}/{{train/good, test/<defect|good>}})")
    rows: list[Row] = [(str(p), "train", 0, "good", None) for p in list_images(train_good)]
    gt_root = category_dir / "ground_truth"
    pair = require_masks or gt_root.is_dir()
    defects = sorted(d for d in test.iterdir() if d.is_dir() and not d.name.startswith("."))
    for folder in defects:
        if folder.name == "good":
            rows += [(str(p), "test", 0, "good", None) for p in list_images(folder)]
        elif not pair:
            rows += [(str(p), "test", 1, folder.name, None) for p in list_images(folder)]
        else:
            rows += paired_rows(folder, gt_root / folder.name, folder.name)
    if pair and gt_root.is_dir():
        names = {d.name for d in defects}
        for folder in sorted(d for d in gt_root.iterdir() if d.is_dir()):
            if folder.name not in names:
                raise DataCorruptError(f"{folder} has no matching test folder {test / folder.name}")
    layout = f"(expected {category_dir}/{{train/good, test/<defect|good>}} with image files)"
    return index_frame(rows, layout, train_good, test)


def index_normal_bad(category_dir: Path, *, train: str, test: str, normal: str, bad: str,
                     ground_truth: str, suffix: str) -> pd.DataFrame:
    """``INDEX_COLUMNS`` of a category with one normal and one defective test folder (BTAD,
    MVTec AD 2): ``<train>`` (normal), ``<test>/<bad>`` paired by stem with
    ``<ground_truth>/<stem><suffix>.*``, then ``<test>/<normal>``; folder listings only."""
    train_dir, test_dir = category_dir / train, category_dir / test
    expected = f"{category_dir}/{{{train}, {test}/{{{normal},{bad}}}}}"
    for needed in (train_dir, test_dir):
        if not needed.is_dir():
            raise DataMissingError(f"{needed} not found (expected {expected})")
    rows: list[Row] = [(str(p), "train", 0, normal, None) for p in list_images(train_dir)]
    if (test_dir / bad).is_dir():
        rows += paired_rows(test_dir / bad, category_dir / ground_truth, bad, suffix=suffix)
    if (test_dir / normal).is_dir():
        rows += [(str(p), "test", 0, normal, None) for p in list_images(test_dir / normal)]
    return index_frame(rows, f"(expected {expected} with image files)", train_dir, test_dir)


def load_category(index: pd.DataFrame, spec: InputSpec, default_size: int, *, name: str,
                  base: Path, id_prefix: str, masks: bool) -> tuple[TaskData, TaskData]:
    """``(train, test)`` of one category from its index (used by ``mvtec``, ``folder`` and the
    other category datasets). Any non-zero mask pixel is a defect (masks that store a class
    number per pixel, as VisA's, included)."""
    train_rows = index[index["split"] == "train"]
    test_rows = index[index["split"] == "test"]
    train = taskdata_from_index(train_rows, spec, default_size, name=f"{name}/train", base=base,
                                id_prefix=id_prefix)
    test = taskdata_from_index(test_rows, spec, default_size, name=f"{name}/test", base=base,
                               id_prefix=id_prefix, with_masks=masks)
    return train, test


class CategoryDataset(StoredDataset):
    """Base of the industrial sets with one task per product category (MVTec AD and its kin).

    Subclasses set ``categories`` (the tasks), ``marker`` (a path inside a category folder that
    shows it is there) and implement :meth:`index_category`, a pure function of a category
    folder returning the ``INDEX_COLUMNS`` DataFrame. Loading, availability checks and error
    messages are shared. Method presets use the ``mvtec`` family (128 px by default, the MKD
    paper's MVTec AD setting): none of these sets has settings of its own in the papers.
    """

    family = "mvtec"
    supports_unified = True
    default_size = 128
    has_masks = True
    categories: ClassVar[tuple[str, ...]]
    marker: ClassVar[str] = "train/good"

    def tasks(self) -> list[str]:
        return list(self.categories)

    def category_of(self, task: str) -> str:
        """The category folder a task reads (the task itself, unless a subclass has variants)."""
        return task

    def accepts(self, folder: Path) -> bool:
        return any((folder / c / self.marker).exists() for c in self.categories)

    def category_dir(self, root: Path | None, task: str) -> Path:
        self.check_task(task)
        category = self.category_of(task)
        folder = self.require(root) / category
        if not (folder / self.marker).exists():
            raise DataMissingError(f"{self.name} category {category} not found: expected "
                                   f"{folder}/{self.marker}; {self.fetch_hint()}")
        return folder

    def index_category(self, folder: Path, task: str) -> pd.DataFrame:
        """The ``INDEX_COLUMNS`` DataFrame of one task read from its category ``folder``."""
        raise NotImplementedError

    def index(self, root: Path | None, task: str) -> pd.DataFrame:
        return self.index_category(self.category_dir(root, task), task)

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        folder = self.category_dir(root, task)
        return load_category(self.index_category(folder, task), spec or InputSpec(),
                             self.default_size, name=f"{self.name}/{task}", base=folder.parent,
                             id_prefix=self.name, masks=self.has_masks)

    def count_folders(self, base: Path, folders: dict[str, str]) -> dict[str, int]:
        """``{<category>/<key>: image files}`` for each category and each ``key -> relative
        folder`` (a folder whose name ends in ``/*`` sums its sub-folders)."""
        out: dict[str, int] = {}
        for cat in self.categories:
            for key, rel in folders.items():
                if rel.endswith("/*"):
                    parent = base / cat / rel[:-2]
                    out[f"{cat}/{key}"] = (sum(count_images(d) for d in parent.iterdir()
                                               if d.is_dir()) if parent.is_dir() else 0)
                else:
                    out[f"{cat}/{key}"] = count_images(base / cat / rel)
        return out


class MVTec(CategoryDataset):
    name = "mvtec"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    fetch_mode = "archive"
    layout = "<category>/{train/good, test/<defect|good>, ground_truth/<defect>}"
    info = DatasetInfo(
        title="MVTec AD (Bergmann, Fauser, Sattlegger, Steger, CVPR 2019)",
        source="https://www.mvtec.com/company/research/datasets/mvtec-ad",
        license="CC BY-NC-SA 4.0 (non-commercial; accept it on MVTec's download page)",
        size="5,354 images in 15 categories (3,629 train, 1,725 test), 5.26 GB archive",
        obtain="licence click-through on MVTec's page, then: bench data fetch mvtec "
               "--accept-license (or --archive FILE)",
    )

    def index_category(self, folder: Path, task: str) -> pd.DataFrame:
        return index_mvtec(folder)

    def count(self, base: Path) -> dict[str, int]:
        counts = self.count_folders(base, {"train/good": "train/good", "test/good": "test/good",
                                           "test/defective": "test/*",
                                           "ground_truth": "ground_truth/*"})
        for cat in self.categories:  # test/* counted test/good too
            counts[f"{cat}/test/defective"] -= counts[f"{cat}/test/good"]
        return {k: counts[k] for cat in self.categories
                for k in (f"{cat}/train/good", f"{cat}/test/good", f"{cat}/test/defective",
                          f"{cat}/ground_truth")}

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "MVTec AD is distributed under CC BY-NC-SA 4.0 behind a licence form:",
            "  1. open https://www.mvtec.com/company/research/datasets/mvtec-ad, accept the "
            "licence and download 'mvtec_anomaly_detection.tar.xz' (5.26 GB);",
            f"  2. bench data fetch mvtec --archive /path/to/mvtec_anomaly_detection.tar.xz   "
            f"(checks its sha256 and unpacks it into {loc})",
            "  or, having accepted the licence, let bench download the archive MVTec links to:",
            "     bench data fetch mvtec --accept-license",
            f"  Manual alternative: tar -xJf mvtec_anomaly_detection.tar.xz -C {loc}",
        ])
