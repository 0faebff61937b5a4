"""``btad``: BTAD, the beanTech Anomaly Detection dataset (Mishra et al., "VT-ADL", ISIE 2021),
three products, detection and localization from the same job.

Layout (the archive ``btad.zip`` unpacks to ``BTech_Dataset_transformed/``; that wrapper, or
none, is accepted under ``<root>/btad``)::

    <root>/btad/<product>/train/ok/*.{bmp,png}
    <root>/btad/<product>/test/{ok,ko}/*.{bmp,png}
    <root>/btad/<product>/ground_truth/ko/<stem>.{png,bmp}

Products ``01``, ``02``, ``03``. Images are BMP or PNG depending on the product; a mask has its
image's **stem** and no ``_mask`` suffix, with its own extension (anomalib reads the same
layout after converting the BMP files to PNG; here they are read as they are). Task
``<product>``: train = ``train/ok``; test = ``test/ok`` (label 0, zero masks) and ``test/ko``
(label 1), each defective image paired by stem with its mask: a missing or orphan mask is an
error naming both files.

Download: the archive anomalib uses (the authors' university server), sha256-checked, after
``--accept-license``: the licence is not confirmed by this project, so read the dataset's page
first. Images are resized to 128 px by default (the ``mvtec`` family's presets apply).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.datasets.base import DatasetInfo
from bench.datasets.mvtec import CategoryDataset, index_normal_bad

CATEGORIES = ("01", "02", "03")


def index_btad(category_dir: Path) -> pd.DataFrame:
    """``path, split, label, defect, mask_path`` of one product (folder listings only), sorted
    by split, defect (``ko`` before ``ok``) and file name."""
    return index_normal_bad(category_dir, train="train/ok", test="test", normal="ok", bad="ko",
                            ground_truth="ground_truth/ko", suffix="")


class BTAD(CategoryDataset):
    name = "btad"
    categories = CATEGORIES
    marker = "train/ok"
    fetch_mode = "archive"
    layout = "<product>/{train/ok, test/{ok,ko}, ground_truth/ko}"
    info = DatasetInfo(
        title="BTAD, beanTech Anomaly Detection (Mishra, Verk, Fornasier, Piciarelli, Foresti, "
              "ISIE 2021)",
        source="https://avires.dimi.uniud.it/papers/btad/btad.zip (the authors' server)",
        license="as stated by the authors (not confirmed by this project; check before use)",
        size="3 products; per-split counts not confirmed by this project",
        obtain="bench data fetch btad --accept-license (sha256-checked), or --archive btad.zip",
    )

    def index_category(self, folder: Path, task: str) -> pd.DataFrame:
        return index_btad(folder)

    def count(self, base: Path) -> dict[str, int]:
        return self.count_folders(base, {"train/ok": "train/ok", "test/ok": "test/ok",
                                         "test/ko": "test/ko",
                                         "ground_truth/ko": "ground_truth/ko"})

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "BTAD is published by its authors (Mishra et al., ISIE 2021); read its terms first:",
            "  having read them: bench data fetch btad --accept-license   (downloads btad.zip, "
            f"checks its sha256 and unpacks it into {loc})",
            "  or, with the archive already downloaded: bench data fetch btad --archive btad.zip",
            f"  Manual alternative: unzip btad.zip -d {loc}   (the BTech_Dataset_transformed/ "
            "wrapper folder is found automatically)",
        ])
