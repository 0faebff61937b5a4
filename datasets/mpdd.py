"""``mpdd``: MPDD, the Metal Parts Defect Detection dataset (Ježek, Jonák, Burget, Dvořák,
Skoták, ICUMT 2021), six categories in the MVTec AD layout, detection and localization from the
same job.

Layout (under ``<root>/mpdd``; a wrapper folder up to three levels deep is accepted)::

    <root>/mpdd/<category>/train/good/*.png
    <root>/mpdd/<category>/test/<defect | good>/*.png
    <root>/mpdd/<category>/ground_truth/<defect>/<stem>_mask.png

Read exactly as ``mvtec`` (:func:`datasets.mvtec.index_mvtec`: masks paired by stem, zero masks
for good images). Images are resized to 128 px by default (the ``mvtec`` family's presets).

Download: the authors share the data from a cloud folder linked in their GitHub README
(https://github.com/stepanje/MPDD); no direct archive link or checksum is known, so
``bench data fetch mpdd`` prints the steps and ``--archive FILE`` unpacks what you downloaded.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import DatasetInfo
from bench.datasets.mvtec import MVTec

CATEGORIES = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate",
              "tubes")


class MPDD(MVTec):
    name = "mpdd"
    categories = CATEGORIES
    fetch_mode = "manual"
    info = DatasetInfo(
        title="MPDD, Metal Parts Defect Detection (Ježek et al., ICUMT 2021)",
        source="https://github.com/stepanje/MPDD",
        license="as stated in the authors' repository (not confirmed by this project; check "
                "before use)",
        size="6 categories; per-split counts not confirmed by this project",
        obtain="download from the link in https://github.com/stepanje/MPDD, then "
               "bench data fetch mpdd --archive <that archive>",
    )

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "MPDD is shared by its authors from a cloud folder (no direct archive link):",
            "  1. open https://github.com/stepanje/MPDD, follow its download link and read the "
            "terms there;",
            f"  2. bench data fetch mpdd --archive /path/to/<downloaded archive>   (unpacks it "
            f"into {loc}; its checksum is unknown, so check the tree: bench data verify mpdd)",
            f"  Manual alternative: unpack it so that {loc}/<category>/train/good exists",
        ])
