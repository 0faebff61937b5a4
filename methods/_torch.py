"""Private plumbing shared by the deep baselines: seeded initialization, batching, smoothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from scipy import ndimage

from bench.datasets.base import TaskData


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (network initialization) under a fixed CPU seed, restoring global RNG after.

    Methods never seed global RNGs; this forks the CPU generator, so the caller's state is kept.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def is_gray(images: torch.Tensor) -> bool:
    """Whether every image repeats one channel (grey-scale data stored as RGB)."""
    return images.shape[1] == 3 and bool(
        torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2]))


def batch_of(data: TaskData, index: slice | torch.Tensor, gray: bool) -> torch.Tensor:
    """Float images in [0, 1]; one channel when the method runs on grey-scale data."""
    x = data.batch(index)
    return x[:, :1] if gray else x


def ordered(data: TaskData, batch_size: int, gray: bool) -> Iterator[torch.Tensor]:
    """Float batches in order (for scoring)."""
    for start in range(0, len(data), batch_size):
        yield batch_of(data, slice(start, start + batch_size), gray)


def shuffled(data: TaskData, batch_size: int, gray: bool,
             generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Float batches in a fresh random order drawn from ``generator`` (one epoch)."""
    perm = torch.randperm(len(data), generator=generator)
    for start in range(0, len(data), batch_size):
        yield batch_of(data, perm[start:start + batch_size], gray)


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of each [H, W] map of an [N, H, W] stack (``sigma=0``: unchanged)."""
    if sigma <= 0:
        return maps
    return np.asarray(ndimage.gaussian_filter(maps, sigma=(0.0, sigma, sigma), mode="reflect"))


def step_decay(optimizer: torch.optim.Optimizer,
               milestones: tuple[int, ...]) -> torch.optim.lr_scheduler.MultiStepLR:
    """Learning rate × 0.1 after each milestone epoch (Ruff et al.'s two-phase schedule)."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=0.1)
