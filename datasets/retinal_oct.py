"""``retinal_oct``: Retinal OCT (Kermany et al., Cell 2018; the Kaggle "kermany2018" OCT2017 set),
one task, ``NORMAL``.

Layout under ``<root>/retinal_oct`` (the Kaggle archive wraps it in ``OCT2017 /``, with a trailing
space, sometimes inside ``oct2017/``; a wrapper up to three levels deep is accepted as extracted)::

    train/{CNV,DME,DRUSEN,NORMAL}/*.jpeg
    test/{CNV,DME,DRUSEN,NORMAL}/*.jpeg          (242 per class, 968 in all)

Protocol: train on the ``NORMAL`` images of ``train/`` only; test on the whole ``test/`` split,
label 1 where the class is not ``NORMAL``. **The official MKD code trains on all four training
folders** (its ImageFolder loader is not filtered to the normal class), which feeds anomalies
into the one-class training set; this harness does not replicate that pitfall. The small
``val/`` split of the Kaggle archive is not used (the paper uses "train and test sets").

Images are resized to 128 px (bilinear), as in the official code. The ~26k normal training
images are decoded in parallel and their resized tensor is cached on disk under
``<data-root>/.cache/tensors/retinal_oct`` (keyed by every file's path, size and time and by the
input size; ``BENCH_DATA_CACHE=0`` turns it off), so later jobs load in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.datasets._loading import count_images, list_images, taskdata_from_index
from bench.datasets.base import DatasetInfo, InputSpec, TaskData
from bench.datasets.stored import StoredDataset

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
NORMAL = "NORMAL"
SPLITS = ("train", "test")


def index_oct(base: Path) -> pd.DataFrame:
    """Every train and test image: ``path, split, label, class`` (label 1 = not NORMAL).

    Pure (folder listings only), sorted by split, class and file name.
    """
    rows = [(str(p), split, int(cls != NORMAL), cls)
            for split in SPLITS for cls in CLASSES for p in list_images(base / split / cls)]
    return pd.DataFrame(rows, columns=["path", "split", "label", "class"])


class RetinalOCT(StoredDataset):
    name = "retinal_oct"
    family = "retinal_oct"
    default_size = 128
    layout = "{train,test}/{CNV,DME,DRUSEN,NORMAL}/*.jpeg"
    info = DatasetInfo(
        title="Retinal OCT, OCT2017 (Kermany, Goldbaum et al., Cell 2018)",
        source="https://www.kaggle.com/datasets/paultimothymooney/kermany2018 "
               "(also Mendeley Data, doi:10.17632/rscbjbr9sj)",
        license="CC BY 4.0",
        size="84,495 grey JPEG images (stated by the distributors), about 5.8 GB zip; "
             "test 968 = 242 per class",
        obtain="Kaggle login: kaggle datasets download -d paultimothymooney/kermany2018, then "
               "bench data fetch retinal_oct --archive kermany2018.zip",
    )

    def tasks(self) -> list[str]:
        return [NORMAL]

    def accepts(self, folder: Path) -> bool:
        return all((folder / s / c).is_dir() for s in SPLITS for c in CLASSES)

    def index(self, root: Path | None) -> pd.DataFrame:
        return index_oct(self.require(root))

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        spec = spec or InputSpec()
        base = self.require(root)
        index = index_oct(base)
        train_rows = index[(index["split"] == "train") & (index["class"] == NORMAL)]
        test_rows = index[index["split"] == "test"]
        cache = self.cache_dir(root)
        train = taskdata_from_index(train_rows, spec, self.default_size, base=base,
                                    name=f"{self.name}/{task}/train", id_prefix=self.name,
                                    cache_dir=cache)
        test = taskdata_from_index(test_rows, spec, self.default_size, base=base,
                                   name=f"{self.name}/{task}/test", id_prefix=self.name,
                                   cache_dir=cache)
        return train, test

    def count(self, base: Path) -> dict[str, int]:
        return {f"{s}/{c}": count_images(base / s / c) for s in SPLITS for c in CLASSES}

    def manual_steps(self, root: Path | None) -> str:
        loc = self.location(root)
        return "\n".join([
            "Retinal OCT (OCT2017) is on Kaggle, which needs a login:",
            "  1. pip install kaggle; put your API token in ~/.kaggle/kaggle.json",
            "  2. kaggle datasets download -d paultimothymooney/kermany2018",
            f"  3. bench data fetch retinal_oct --archive kermany2018.zip   (unpacks into {loc})",
            f"  Manual alternative: unzip kermany2018.zip -d {loc}   (the 'OCT2017 /' wrapper "
            "folder is found automatically)",
        ])
