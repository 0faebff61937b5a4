"""``headct`` and ``brainmri``: the paper's small medical sets, with its random split.

Protocol (paper §4.1; the official code has no loader for either set): 10 normal images chosen
at random are held out; test = those 10 normals + **all** anomalies; train = the other normals.
HeadCT (100 normal + 100 hemorrhage) gives 90 train / 110 test; BrainMRI (98 normal + 155 tumour)
gives 88 train / 165 test. The paper does not give its split seed; the maintainers advise
repeating the random split several times (issue #10), so **the job seed chooses the split**:
each seed is a different split, the same seed always the same one, and ``bench table`` reports
mean ± std over seeds.

Layouts under the data root (the Kaggle archives, extracted; a wrapper folder up to three levels
deep is accepted):

- ``<root>/headct/labels.csv`` with columns ``id`` and ``hemorrhage`` (the distributed file
  writes the second header as ``" hemorrhage"``, with a space; names are stripped) and the images
  ``head_ct/head_ct/<id as 3 digits>.png`` (Kaggle ``felipekitamura/head-ct-hemorrhage``; a single
  ``head_ct/`` folder is accepted too). Label 1 = hemorrhage. Assumed from public code that reads
  this archive; a missing image or a label other than 0/1 is an error naming the file.
- ``<root>/brainmri/{no,yes}/*`` (Kaggle ``navoneel/brain-mri-images-for-brain-tumor-detection``;
  the archive also holds a duplicate ``brain_tumor_dataset/{no,yes}``, the shallower copy wins).
  Mixed JPEG/PNG files of mixed sizes; every image is converted to 3 channels.

Default sizes: HeadCT 128 px (paper); BrainMRI 256 px (paper, and the maintainers' advice in
issue #10). The paper's HeadCT augmentation (rotation up to 20°, scale 0.9–1.05) is a
training-time transform: :func:`datasets.augment.headct_affine`.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from bench.core.errors import DataCorruptError, DataMissingError
from bench.datasets._loading import count_images, list_images, taskdata_from_index
from bench.datasets.base import DatasetInfo, InputSpec, TaskData
from bench.datasets.stored import StoredDataset

HELD_OUT_NORMALS = 10


def held_out_split(n_normal: int, seed: int, salt: str,
                   held_out: int = HELD_OUT_NORMALS) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices into ``n_normal`` normals; a pure function of (seed, salt)."""
    if n_normal <= held_out:
        raise DataMissingError(f"{salt}: {n_normal} normal images, need more than {held_out}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(salt.encode())])
    perm = rng.permutation(n_normal)
    return np.sort(perm[held_out:]), np.sort(perm[:held_out])


class _HeldOutMedical(StoredDataset):
    """One task, ``normal``-vs-anomalies, with the seed-chosen held-out normals."""

    task_name: ClassVar[str] = "normal"
    kaggle: ClassVar[str]

    def tasks(self) -> list[str]:
        return [self.task_name]

    def index(self, base: Path) -> pd.DataFrame:
        """``path, label`` (+ dataset-specific columns), sorted by path."""
        raise NotImplementedError

    def split(self, index: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        normals = index[index["label"] == 0]
        train_idx, held = held_out_split(len(normals), seed, self.name)
        test = pd.concat([normals.iloc[held], index[index["label"] == 1]])
        return normals.iloc[train_idx], test

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        spec = spec or InputSpec()
        base = self.require(root)
        train_rows, test_rows = self.split(self.index(base), seed)
        train = taskdata_from_index(train_rows, spec, self.default_size, base=base,
                                    name=f"{self.name}/{task}/train", id_prefix=self.name)
        test = taskdata_from_index(test_rows, spec, self.default_size, base=base,
                                   name=f"{self.name}/{task}/test", id_prefix=self.name)
        return train, test

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        slug = self.kaggle.split("/")[1]
        return "\n".join([
            f"{self.info.title} is on Kaggle, which needs a login:",
            "  1. pip install kaggle; put your API token in ~/.kaggle/kaggle.json",
            f"  2. kaggle datasets download -d {self.kaggle}",
            f"  3. bench data fetch {self.name} --archive {slug}.zip   (unpacks into {loc})",
            f"  Manual alternative: unzip {slug}.zip -d {loc}",
        ])


class HeadCT(_HeldOutMedical):
    name = "headct"
    family = "headct"
    default_size = 128
    kaggle = "felipekitamura/head-ct-hemorrhage"
    layout = "labels.csv and head_ct/head_ct/<id:03d>.png"
    info = DatasetInfo(
        title="Head CT - hemorrhage (Kitamura, Kaggle)",
        source="https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage",
        license="as stated on the Kaggle page (not confirmed by this project; check before use)",
        size="200 PNG slices (100 normal, 100 hemorrhage), about 25 MB",
        obtain="Kaggle login: kaggle datasets download -d felipekitamura/head-ct-hemorrhage, "
               "then bench data fetch headct --archive head-ct-hemorrhage.zip",
    )

    @staticmethod
    def images_dir(base: Path) -> Path | None:
        for cand in (base / "head_ct" / "head_ct", base / "head_ct"):
            if cand.is_dir() and count_images(cand):
                return cand
        return None

    def accepts(self, folder: Path) -> bool:
        return (folder / "labels.csv").is_file() and self.images_dir(folder) is not None

    def labels(self, base: Path) -> pd.DataFrame:
        path = base / "labels.csv"
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise DataCorruptError(f"cannot read {path}: {exc}") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        if not {"id", "hemorrhage"} <= set(frame.columns):
            raise DataCorruptError(f"{path}: expected columns 'id' and 'hemorrhage', found "
                                   f"{', '.join(frame.columns)}")
        bad = frame[~frame["hemorrhage"].isin([0, 1])]
        if len(bad):
            raise DataCorruptError(f"{path}: hemorrhage must be 0 or 1 (id {bad['id'].iloc[0]})")
        return frame

    def index(self, base: Path) -> pd.DataFrame:
        images = self.images_dir(base)
        assert images is not None  # require() checked the layout
        labels = self.labels(base)
        rows = []
        for ident, label in zip(labels["id"], labels["hemorrhage"], strict=True):
            path = images / f"{int(ident):03d}.png"
            if not path.is_file():
                raise DataMissingError(f"{path} not found (listed as id {ident} in "
                                       f"{base / 'labels.csv'})")
            rows.append((str(path), int(label), int(ident)))
        return pd.DataFrame(rows, columns=["path", "label", "id"]).sort_values("path")

    def count(self, base: Path) -> dict[str, int]:
        labels = self.labels(base)["hemorrhage"]
        images = self.images_dir(base)
        return {"images": count_images(images) if images else 0,
                "normal": int((labels == 0).sum()), "hemorrhage": int((labels == 1).sum())}


class BrainMRI(_HeldOutMedical):
    name = "brainmri"
    family = "brainmri"
    default_size = 256
    kaggle = "navoneel/brain-mri-images-for-brain-tumor-detection"
    layout = "{no,yes}/*.jpg"
    info = DatasetInfo(
        title="Brain MRI images for brain tumor detection (Chakrabarty, Kaggle)",
        source="https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-"
               "detection",
        license="as stated on the Kaggle page (not confirmed by this project; check before use)",
        size="253 JPEG/PNG images (98 no tumour, 155 tumour), about 15 MB",
        obtain="Kaggle login: kaggle datasets download -d navoneel/brain-mri-images-for-brain-"
               "tumor-detection, then bench data fetch brainmri --archive <that zip>",
    )

    def accepts(self, folder: Path) -> bool:
        return (folder / "no").is_dir() and (folder / "yes").is_dir()

    def index(self, base: Path) -> pd.DataFrame:
        rows = [(str(p), label) for label, sub in ((0, "no"), (1, "yes"))
                for p in list_images(base / sub)]
        return pd.DataFrame(rows, columns=["path", "label"]).sort_values("path")

    def count(self, base: Path) -> dict[str, int]:
        return {"no": count_images(base / "no"), "yes": count_images(base / "yes")}
