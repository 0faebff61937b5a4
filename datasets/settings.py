"""The data of the settings beyond one-class: unions of categories and few-shot draws.

- :func:`union` joins the ``(train, test)`` of several categories into one pair (the unified
  setting: one model on every category's normal images); :func:`anonymous` gives a method a
  copy without the category in its name or ids, so nothing in what a method receives tells a
  test image's category.
- :func:`few_shot_indices` draws ``k`` of a task's training images from the job's seed, the
  same on every machine and in every worker (NumPy's PCG64, seeded from the seed and a CRC-32 of
  ``dataset/task``); the draws of one seed are nested: the ``k=2`` draw holds the ``k=1`` one.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from bench.core.errors import UsageError
from bench.datasets.base import NativeMasks, TaskData

#: how :func:`few_shot_indices` draws, as records state it
FEW_SHOT_DRAW = ("numpy.random.Generator(PCG64(SeedSequence([seed, crc32('<dataset>/<task>')])))"
                 ".permutation(n)[:k], sorted")


def few_shot_indices(n: int, k: int, seed: int, dataset: str, task: str) -> np.ndarray:
    """The sorted indices of ``k`` of ``n`` training images, drawn from ``seed`` and the task.

    Independent of the process, the worker count and the machine: the generator is NumPy's
    PCG64 (its stream is fixed across platforms), seeded from integers only (a CRC-32 of the
    task's name, not Python's salted ``hash``). A permutation's first ``k`` entries, so the
    draw for a smaller ``k`` is part of the draw for a larger one.
    """
    if k > n:
        raise UsageError(f"few-shot k={k} but {dataset}/{task} has {n} training images")
    tag = zlib.crc32(f"{dataset}/{task}".encode())
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), tag])))
    return np.sort(rng.permutation(n)[:k])


class ConcatMasks(NativeMasks):
    """The native-resolution masks of several test sets, one after the other (each part crops
    its own masks already)."""

    def __init__(self, parts: Sequence[NativeMasks]) -> None:
        super().__init__(sum(len(p) for p in parts))
        self.parts = list(parts)
        self._starts = np.cumsum([0, *(len(p) for p in parts)])
        self.binarization = " / ".join(sorted({p.binarization for p in parts}))  # type: ignore[misc]

    def _locate(self, i: int) -> tuple[NativeMasks, int]:
        part = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.parts[part], i - int(self._starts[part])

    def shapes(self) -> list[tuple[int, int]]:
        return [s for p in self.parts for s in p.shapes()]

    def _full(self, i: int) -> np.ndarray:
        part, j = self._locate(i)
        return part[j]

    def _full_shape(self, i: int) -> tuple[int, int]:
        part, j = self._locate(i)
        return part.shapes()[j]

    def subset(self, index: Sequence[int]) -> NativeMasks:
        return _Picked(self, [int(i) for i in index])


class _Picked(NativeMasks):
    """Some masks of another :class:`NativeMasks`, in a given order."""

    def __init__(self, base: NativeMasks, order: list[int]) -> None:
        super().__init__(len(order))
        self.base, self.order = base, order
        self.binarization = base.binarization  # type: ignore[misc]

    def shapes(self) -> list[tuple[int, int]]:
        every = self.base.shapes()
        return [every[i] for i in self.order]

    def _full(self, i: int) -> np.ndarray:
        return self.base[self.order[i]]

    def _full_shape(self, i: int) -> tuple[int, int]:
        return self.base.shapes()[self.order[i]]

    def subset(self, index: Sequence[int]) -> NativeMasks:
        return _Picked(self.base, [self.order[int(i)] for i in index])


def _concat(parts: Sequence[TaskData], name: str) -> TaskData:
    sizes = {p.size for p in parts}
    if len(sizes) != 1:
        raise ValueError(f"{name}: the categories' images differ in size ({sorted(sizes)})")
    masks = None
    if any(p.masks is not None for p in parts):
        masks = torch.cat([p.masks if p.masks is not None else
                           torch.zeros((len(p), *p.size), dtype=torch.float32) for p in parts])
    native = None
    if all(p.native_masks is not None for p in parts):
        native = ConcatMasks([p.native_masks for p in parts if p.native_masks is not None])
    natives = {p.native_size for p in parts}
    return TaskData(torch.cat([p.images for p in parts]),
                    np.concatenate([p.labels for p in parts]), masks,
                    [i for p in parts for i in p.ids],
                    native_size=parts[0].native_size if len(natives) == 1 else max(natives),
                    name=name, native_masks=native)


def union(parts: Sequence[tuple[TaskData, TaskData]],
          name: str) -> tuple[TaskData, TaskData, list[slice]]:
    """One ``(train, test)`` from every category's, in the given order, and the slice of the
    test set that each category's test images occupy. The ids stay the files' (for the record's
    artifacts); :func:`anonymous` makes what a method sees."""
    if not parts:
        raise ValueError(f"{name}: no categories to join")
    train = _concat([p[0] for p in parts], f"{name}/train")
    test = _concat([p[1] for p in parts], f"{name}/test")
    bounds = np.cumsum([0, *(len(p[1]) for p in parts)])
    return train, test, [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def anonymous(data: TaskData, name: str) -> TaskData:
    """``data`` with the name ``name`` and ids ``name/0``, ``name/1``, ...: the same images,
    labels and masks, but nothing that names an image's category or file."""
    return TaskData(data.images, data.labels, data.masks, [f"{name}/{i}" for i in range(len(data))],
                    native_size=data.native_size, name=name, native_masks=data.native_masks)
