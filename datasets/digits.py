"""``digits``: scikit-learn's bundled 8×8 handwritten digits as a one-class benchmark.

1,797 images of ten classes ship inside scikit-learn, so this dataset needs no download. Each
class is split once, deterministically (a fixed generator, independent of the job seed, so that
every seed sees the same data), into a training pool and a test pool of about half each.

Task ``d``: train = the images of class ``d`` in the training pool; test = the whole test pool,
label 1 where the class differs from ``d`` (the MNIST one-vs-rest protocol in miniature).
Images are upsampled from 8×8 to 32×32 (bilinear) and repeated to three channels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from bench.datasets.base import (
    DatasetInfo,
    DatasetProtocol,
    InputSpec,
    TaskData,
    build_taskdata,
    one_vs_rest,
    split_per_class,
)

SPLIT_SEED = 20211  # fixed: the split is part of the dataset, not of the job
CLASSES = tuple(str(d) for d in range(10))


@lru_cache(maxsize=1)
def _pools() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # only jobs on digits need it (start-up time)

    bunch = load_digits()
    images = np.rint(bunch.images / 16.0 * 255.0).astype(np.uint8)
    target = bunch.target.astype(np.int64)
    train_idx, test_idx = split_per_class(target, 0.5, SPLIT_SEED)
    return images, target, train_idx, test_idx


class Digits(DatasetProtocol):
    name = "digits"
    family = "digits"
    default_size = 32
    embedded = True
    info = DatasetInfo(
        title="scikit-learn digits (UCI optical recognition of handwritten digits, test part)",
        source="bundled with scikit-learn (sklearn.datasets.load_digits)",
        license="CC BY 4.0 (UCI); BSD-3 for scikit-learn",
        size="1,797 images, 8x8, 10 classes",
        obtain="nothing to do: installed with scikit-learn",
    )

    def tasks(self) -> list[str]:
        return list(CLASSES)

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        spec = spec or InputSpec()
        normal = int(task)
        images, target, train_pool, test_pool = _pools()
        train_idx = train_pool[target[train_pool] == normal]

        def pil(i: int) -> Image.Image:
            return Image.fromarray(images[i])

        train = build_taskdata(
            [pil(i) for i in train_idx], np.zeros(len(train_idx), dtype=np.int64), spec,
            self.default_size, ids=[f"digits/{i}" for i in train_idx], name=f"digits/{task}/train",
        )
        test = build_taskdata(
            [pil(i) for i in test_pool], one_vs_rest(target[test_pool], normal), spec,
            self.default_size, ids=[f"digits/{i}" for i in test_pool], name=f"digits/{task}/test",
        )
        return train, test
