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


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    """``{image stem: mask path}`` for ``<stem>_mask.<ext>`` files; other files are errors."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_image(p)):
        if not path.stem.endswith(MASK_SUFFIX):
            raise DataCorruptError(f"{path}: a ground-truth file must be named "
                                   f"<image stem>{MASK_SUFFIX}{path.suffix}")
        out[path.stem[: -len(MASK_SUFFIX)]] = path
    return out


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
    rows: list[tuple[str, str, int, str, str | None]] = [
        (str(p), "train", 0, "good", None) for p in list_images(train_good)]
    gt_root = category_dir / "ground_truth"
    pair = require_masks or gt_root.is_dir()
    defects = sorted(d for d in test.iterdir() if d.is_dir() and not d.name.startswith("."))
    for folder in defects:
        images = list_images(folder)
        if folder.name == "good":
            rows += [(str(p), "test", 0, "good", None) for p in images]
            continue
        if not pair:
            rows += [(str(p), "test", 1, folder.name, None) for p in images]
            continue
        masks = _masks_by_stem(gt_root / folder.name)
        for image in images:
            mask = masks.pop(image.stem, None)
            if mask is None:
                expected = gt_root / folder.name / f"{image.stem}{MASK_SUFFIX}.png"
                raise DataCorruptError(f"no mask for test image {image}: expected {expected}")
            rows.append((str(image), "test", 1, folder.name, str(mask)))
        if masks:
            stem, mask = next(iter(masks.items()))
            raise DataCorruptError(f"mask {mask} has no test image: expected "
                                   f"{folder / stem}.png")
    if pair and gt_root.is_dir():
        names = {d.name for d in defects}
        for folder in sorted(d for d in gt_root.iterdir() if d.is_dir()):
            if folder.name not in names:
                raise DataCorruptError(f"{folder} has no matching test folder {test / folder.name}")
    frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    layout = f"(expected {category_dir}/{{train/good, test/<defect|good>}} with image files)"
    if not (frame["split"] == "train").any():
        raise DataMissingError(f"{train_good} holds no images {layout}")
    if not (frame["split"] == "test").any():
        raise DataMissingError(f"{test} holds no images {layout}")
    return frame


def load_category(index: pd.DataFrame, spec: InputSpec, default_size: int, *, name: str,
                  base: Path, id_prefix: str, masks: bool) -> tuple[TaskData, TaskData]:
    """``(train, test)`` of one category from its index (used by ``mvtec`` and ``folder``)."""
    train_rows = index[index["split"] == "train"]
    test_rows = index[index["split"] == "test"]
    train = taskdata_from_index(train_rows, spec, default_size, name=f"{name}/train", base=base,
                                id_prefix=id_prefix)
    test = taskdata_from_index(test_rows, spec, default_size, name=f"{name}/test", base=base,
                               id_prefix=id_prefix, with_masks=masks)
    return train, test


class MVTec(StoredDataset):
    name = "mvtec"
    family = "mvtec"
    default_size = 128
    has_masks = True
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

    def tasks(self) -> list[str]:
        return list(CATEGORIES)

    def accepts(self, folder: Path) -> bool:
        return any((folder / c / "train" / "good").is_dir() for c in CATEGORIES)

    def category_dir(self, root: Path | None, task: str) -> Path:
        self.check_task(task)
        folder = self.require(root) / task
        if not (folder / "train" / "good").is_dir():
            raise DataMissingError(f"mvtec category {task} not found: expected "
                                   f"{folder}/train/good; {self.fetch_hint()}")
        return folder

    def index(self, root: Path | None, task: str) -> pd.DataFrame:
        return index_mvtec(self.category_dir(root, task))

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        folder = self.category_dir(root, task)
        return load_category(index_mvtec(folder), spec or InputSpec(), self.default_size,
                             name=f"mvtec/{task}", base=folder.parent, id_prefix="mvtec",
                             masks=True)

    def count(self, base: Path) -> dict[str, int]:
        out: dict[str, int] = {}
        for cat in CATEGORIES:
            folder = base / cat
            test = folder / "test"
            defects = ([d for d in test.iterdir() if d.is_dir() and d.name != "good"]
                       if test.is_dir() else [])
            gt = folder / "ground_truth"
            out[f"{cat}/train/good"] = count_images(folder / "train" / "good")
            out[f"{cat}/test/good"] = count_images(test / "good")
            out[f"{cat}/test/defective"] = sum(count_images(d) for d in defects)
            out[f"{cat}/ground_truth"] = (sum(count_images(d) for d in gt.iterdir() if d.is_dir())
                                          if gt.is_dir() else 0)
        return out

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
