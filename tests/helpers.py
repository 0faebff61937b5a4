"""Small synthetic fixtures shared by tests."""

from __future__ import annotations

import numpy as np
import torch

from bench.datasets.base import TaskData


def blobs_task(n_train: int = 24, n_test: int = 20, size: int = 32, seed: int = 0,
               defect: float = 0.8) -> tuple[TaskData, TaskData]:
    """Smooth random images as normals; anomalies carry a bright square with its mask."""
    rng = np.random.default_rng(seed)

    def normal(n: int) -> np.ndarray:
        base = rng.normal(0.4, 0.05, size=(n, 1, size // 4, size // 4))
        up = np.kron(base, np.ones((1, 1, 4, 4)))
        return np.clip(up + rng.normal(0, 0.02, size=(n, 1, size, size)), 0, 1)

    train = normal(n_train)
    test = normal(n_test)
    labels = np.zeros(n_test, dtype=np.int64)
    labels[n_test // 2:] = 1
    masks = np.zeros((n_test, size, size), dtype=np.float32)
    s = size // 4
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, size - s, size=2)
        test[i, :, y:y + s, x:x + s] = defect
        masks[i, y:y + s, x:x + s] = 1.0

    def to_u8(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.rint(np.repeat(a, 3, axis=1) * 255).astype(np.uint8))

    return (TaskData(to_u8(train), np.zeros(n_train, dtype=np.int64), name="blobs/train"),
            TaskData(to_u8(test), labels, torch.from_numpy(masks), name="blobs/test"))
