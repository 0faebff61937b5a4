"""``mvtec_ad2``: MVTec AD 2 (Heckler-Kram, Neudeck, Scheler, König, Steger, 2025), eight
categories, scored on the **public** test set (the only one with labels), detection and
localization from the same job.

Layout (MVTec's archive, extracted into ``<root>/mvtec_ad2``; a wrapper folder up to three
levels deep is accepted)::

    <root>/mvtec_ad2/<category>/train/good/*.png
    <root>/mvtec_ad2/<category>/validation/good/*.png
    <root>/mvtec_ad2/<category>/test_public/{good,bad}/*.png
    <root>/mvtec_ad2/<category>/test_public/ground_truth/bad/<stem>_mask.png
    (<category>/test_private*/: unlabelled, scored by MVTec's server; not read here)

Task ``<category>``: train = ``train/good``; test = ``test_public`` (``good`` label 0 with zero
masks, ``bad`` label 1 paired by stem with ``<stem>_mask.png``). ``validation/good`` is not used
(it is counted by ``bench data verify``); methods here have no validation step. Numbers on
``test_public`` are not the official leaderboard's (private test sets). Images are resized to
128 px by default (the ``mvtec`` family's presets).

Download: behind MVTec's licence form (CC BY-NC-SA 4.0); no direct link is known, so
``bench data fetch mvtec_ad2`` prints the steps and ``--archive FILE`` unpacks the archive.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.datasets.base import DatasetInfo
from bench.datasets.mvtec import MASK_SUFFIX, CategoryDataset, index_normal_bad

CATEGORIES = ("can", "fabric", "fruit_jelly", "rice", "sheet_metal", "vial", "wallplugs",
              "walnuts")
TEST = "test_public"


def index_mvtec_ad2(category_dir: Path) -> pd.DataFrame:
    """``path, split, label, defect, mask_path`` of one category: ``train/good`` and the public
    test set, sorted by split, defect (``bad`` before ``good``) and file name."""
    return index_normal_bad(category_dir, train="train/good", test=TEST, normal="good",
                            bad="bad", ground_truth=f"{TEST}/ground_truth/bad", suffix=MASK_SUFFIX)


class MVTecAD2(CategoryDataset):
    name = "mvtec_ad2"
    categories = CATEGORIES
    layout = f"<category>/{{train/good, validation/good, {TEST}/{{good,bad,ground_truth/bad}}}}"
    info = DatasetInfo(
        title="MVTec AD 2 (Heckler-Kram, Neudeck, Scheler, König, Steger, 2025)",
        source="https://www.mvtec.com/company/research/datasets/mvtec-ad-2",
        license="CC BY-NC-SA 4.0 (non-commercial; accept it on MVTec's download page)",
        size="8 categories, over 8,000 images (per-split counts not confirmed by this project)",
        obtain="licence form on MVTec's page, then bench data fetch mvtec_ad2 --archive FILE",
    )

    def index_category(self, folder: Path, task: str) -> pd.DataFrame:
        return index_mvtec_ad2(folder)

    def count(self, base: Path) -> dict[str, int]:
        return self.count_folders(base, {
            "train/good": "train/good", "validation/good": "validation/good",
            f"{TEST}/good": f"{TEST}/good", f"{TEST}/bad": f"{TEST}/bad",
            f"{TEST}/ground_truth": f"{TEST}/ground_truth/bad"})

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "MVTec AD 2 is distributed under CC BY-NC-SA 4.0 behind a licence form:",
            "  1. open https://www.mvtec.com/company/research/datasets/mvtec-ad-2, accept the "
            "licence and download the dataset archive;",
            f"  2. bench data fetch mvtec_ad2 --archive /path/to/<that archive>   (unpacks it into "
            f"{loc}; no checksum is published, so check the tree: bench data verify mvtec_ad2)",
            f"  Manual alternative: unpack it so that {loc}/<category>/{TEST} exists",
        ])
