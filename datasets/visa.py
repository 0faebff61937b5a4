"""``visa``: VisA, the Visual Anomaly dataset (Zou et al., "SPot-the-Difference", ECCV 2022),
one task per object, detection and localization from the same job.

Layout (Amazon's archive ``VisA_20220922.tar``, extracted into ``<root>/visa``)::

    <root>/visa/split_csv/1cls.csv
    <root>/visa/<object>/Data/Images/{Normal,Anomaly}/*.JPG
    <root>/visa/<object>/Data/Masks/Anomaly/*.png

Protocol: the distributors' one-class split, ``split_csv/1cls.csv`` (columns ``object, split,
label, image, mask``; ``label`` is ``normal`` or ``anomaly``; paths relative to the archive's
root), read **directly**: nothing is copied into another tree (anomalib copies it into an MVTec
layout first; the split is the same). Task ``<object>``: train = its ``train`` rows (all
normal); test = its ``test`` rows, label 1 for ``anomaly`` with the row's mask, normal images
with zero masks. VisA's masks store a number per defect pixel rather than 255, so every
non-zero pixel is a defect (as anomalib binarizes them).

Images are resized to 128 px by default (the ``mvtec`` family's presets apply).

Download: Amazon links the archive openly (``bench data fetch visa`` downloads it, sha256
checked: the checksum anomalib ships for the same URL). Licence: the distributor's README says
CC BY 4.0; anomalib's module states CC BY-NC-SA 4.0; check before commercial use.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from bench.core.errors import DataCorruptError, DataMissingError
from bench.datasets._loading import count_images
from bench.datasets.base import DatasetInfo
from bench.datasets.mvtec import CategoryDataset, Row, index_frame

#: the twelve objects, in the order of the distributors' statistics table
CATEGORIES = ("pcb1", "pcb2", "pcb3", "pcb4", "capsules", "candle", "macaroni1", "macaroni2",
              "cashew", "chewinggum", "fryum", "pipe_fryum")
SPLIT_CSV = Path("split_csv") / "1cls.csv"
CSV_COLUMNS = ("object", "split", "label", "image", "mask")
_LABELS = {"normal": 0, "anomaly": 1}


@lru_cache(maxsize=4)
def _read_split(path: Path, mtime_ns: int) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataCorruptError(f"cannot read {path}: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise DataCorruptError(f"{path}: expected columns {', '.join(CSV_COLUMNS)}; missing "
                               f"{', '.join(missing)}")
    return frame


def read_split(base: Path) -> pd.DataFrame:
    """``split_csv/1cls.csv`` under ``base`` as strings (read once per file version)."""
    path = base / SPLIT_CSV
    if not path.is_file():
        raise DataMissingError(f"{path} not found (VisA's one-class split file)")
    return _read_split(path, path.stat().st_mtime_ns)


def index_visa(base: Path, category: str) -> pd.DataFrame:
    """The rows of ``category`` in the 1cls split as ``path, split, label, defect, mask_path``.

    ``defect`` is ``good`` or ``anomaly`` (the split file does not name defect types). Every
    listed image, and every anomaly's mask, must exist; an anomaly in the training split, an
    unknown label or split, or an anomaly without a mask raises :class:`DataCorruptError`
    naming the CSV line. Sorted (split, defect, path).
    """
    csv = base / SPLIT_CSV
    frame = read_split(base)
    rows: list[Row] = []
    for line, rec in zip(frame.index, frame.itertuples(index=False), strict=True):
        if rec.object != category:
            continue
        where = f"{csv}, line {int(line) + 2}"
        label = _LABELS.get(rec.label.strip().lower())
        if label is None or rec.split not in ("train", "test"):
            raise DataCorruptError(f"{where}: label must be normal/anomaly and split train/test, "
                                   f"found {rec.label!r}, {rec.split!r}")
        if label and rec.split == "train":
            raise DataCorruptError(f"{where}: an anomaly in the training split")
        image = base / rec.image
        if not image.is_file():
            raise DataMissingError(f"{image} not found (listed in {where})")
        mask = None
        if label:
            if not rec.mask:
                raise DataCorruptError(f"{where}: anomalous image {image} has no mask")
            mask = base / rec.mask
            if not mask.is_file():
                raise DataMissingError(f"mask {mask} not found (listed in {where})")
        rows.append((str(image), rec.split, label, "anomaly" if label else "good",
                     str(mask) if mask else None))
    rows.sort(key=lambda r: (r[1] != "train", r[3], r[0]))
    layout = f"(no {category} rows of that split in {csv})"
    return index_frame(rows, layout, base / category, base / category)


class VisA(CategoryDataset):
    name = "visa"
    categories = CATEGORIES
    marker = "Data/Images/Normal"
    fetch_mode = "archive"
    license_gate = False
    layout = "split_csv/1cls.csv and <object>/Data/{Images/{Normal,Anomaly}, Masks/Anomaly}"
    info = DatasetInfo(
        title="VisA, Visual Anomaly (Zou, Jeong, Pemula, Zhang, Dabeer, ECCV 2022)",
        source="https://github.com/amazon-science/spot-diff",
        license="CC BY 4.0 per the distributor's README (anomalib states CC BY-NC-SA 4.0; "
                "check before commercial use)",
        size="10,821 images in 12 objects (9,621 normal, 1,200 anomalous), one tar archive",
        obtain="bench data fetch visa (downloads Amazon's public archive, sha256-checked), or "
               "--archive VisA_20220922.tar",
    )

    def accepts(self, folder: Path) -> bool:
        return (folder / SPLIT_CSV).is_file() and super().accepts(folder)

    def index_category(self, folder: Path, task: str) -> pd.DataFrame:
        return index_visa(folder.parent, task)

    def count(self, base: Path) -> dict[str, int]:
        out: dict[str, int] = {}
        for cat in self.categories:
            data = base / cat / "Data"
            out[f"{cat}/normal"] = count_images(data / "Images" / "Normal")
            out[f"{cat}/anomaly"] = count_images(data / "Images" / "Anomaly")
            out[f"{cat}/masks"] = count_images(data / "Masks" / "Anomaly")
        return out

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "VisA is hosted by Amazon (licence: see https://github.com/amazon-science/spot-diff):",
            f"  bench data fetch visa   (downloads VisA_20220922.tar, checks its sha256 and "
            f"unpacks it into {loc})",
            "  or, with the archive already downloaded: bench data fetch visa --archive "
            "VisA_20220922.tar",
            f"  Manual alternative: tar -xf VisA_20220922.tar -C {loc}",
        ])
