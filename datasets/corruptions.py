"""Corrupted copies of a test set: the corrupted setting (robustness, as ImageNet-C and MVTec-C).

The definitions and severities follow ImageNet-C (Hendrycks & Dietterich, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations", ICLR 2019; their
``make_imagenet_c.py``), five of its corruptions at its severities 1-5, applied to the images
at the size the method sees them (as ImageNet-C corrupts the 224 px crops). The work is done by
scikit-image and Pillow, as in the original code:

============== ================================================================ ==================
corruption     definition (x: RGB image in [0, 1])                              parameter c, 1..5
============== ================================================================ ==================
gaussian_noise ``skimage.util.random_noise(x, "gaussian", var=c**2)`` (clipped)  .08 .12 .18 .26 .38
gaussian_blur  ``skimage.filters.gaussian(x, sigma=c, channel_axis=-1)``         1 2 3 4 6
brightness     ``rgb2hsv``, value + c, clipped, ``hsv2rgb`` (skimage.color)     .1 .2 .3 .4 .5
contrast       ``(x - mean) * c + mean``, the mean per channel over the image   .4 .3 .2 .1 .05
jpeg           Pillow JPEG encode and decode at quality c                       25 18 15 10 7
============== ================================================================ ==================

Contrast is the one line of ImageNet-C's own code (no library has its per-channel-mean form).
Results are rounded back to ``uint8``. Noise is drawn from a generator seeded from the job's
seed, the corruption and the severity, so a copy is the same in every run of a seed. A copy
never touches the clean images: the clean scores are the one-class setting's.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.datasets.base import TaskData

SEVERITIES = (1, 2, 3, 4, 5)
#: corruption -> its parameter at severities 1..5 (ImageNet-C's)
PARAMETERS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "jpeg": (25, 18, 15, 10, 7),
}
CORRUPTIONS = tuple(PARAMETERS)
SOURCE = ("ImageNet-C (Hendrycks & Dietterich, ICLR 2019): its definitions and severities 1-5, "
          "at the model's input size; scikit-image and Pillow do the work")


def _rgb(x: np.ndarray) -> np.ndarray:
    return x if x.shape[2] == 3 else np.repeat(x, 3, axis=2)


def _noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.util import random_noise

    return np.asarray(random_noise(x, mode="gaussian", var=c**2, rng=rng, clip=True))


def _blur(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian

    return np.asarray(gaussian(x, sigma=c, channel_axis=-1))


def _brightness(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    if x.shape[2] != 3:  # grey: the value channel is the image itself
        return np.clip(x + c, 0, 1)
    hsv = rgb2hsv(x)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
    return np.asarray(hsv2rgb(hsv))


def _contrast(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1)


def _jpeg(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    grey = x.shape[2] == 1
    pixels = np.rint(x * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if grey else pixels).save(buf, "JPEG", quality=int(c))
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float64) / 255.0
    return out[:, :, None] if grey else out


_FUNCTIONS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _noise, "gaussian_blur": _blur, "brightness": _brightness,
    "contrast": _contrast, "jpeg": _jpeg,
}


def corrupt_images(images: torch.Tensor, corruption: str, severity: int,
                   seed: int) -> torch.Tensor:
    """A corrupted copy of ``N x C x H x W`` ``uint8`` images (the input is left as it is)."""
    if corruption not in PARAMETERS:
        raise ValueError(f"unknown corruption {corruption!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity} is not one of {SEVERITIES}")
    c = PARAMETERS[corruption][severity - 1]
    rng = np.random.default_rng([int(seed), zlib.crc32(corruption.encode()), severity])
    fn = _FUNCTIONS[corruption]
    out = np.empty(tuple(images.shape), dtype=np.uint8)
    for i, image in enumerate(images.numpy()):
        x = image.transpose(1, 2, 0).astype(np.float64) / 255.0
        y = fn(x, c, rng)
        if y.shape[2] != x.shape[2]:
            y = y[:, :, :1] if x.shape[2] == 1 else _rgb(y)
        out[i] = np.clip(np.rint(y * 255), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return torch.from_numpy(out)


def corrupted(data: TaskData, corruption: str, severity: int, seed: int) -> TaskData:
    """``data`` with corrupted images; labels, masks and ids as they were."""
    return TaskData(corrupt_images(data.images, corruption, severity, seed), data.labels,
                    data.masks, data.ids, native_size=data.native_size,
                    name=f"{data.name}@{corruption}:{severity}", native_masks=data.native_masks)


def protocol() -> dict[str, Any]:
    """What the record's ``corrupted.protocol`` says about the copies."""
    return {"source": SOURCE, "severities": list(SEVERITIES),
            "parameters": {k: list(v) for k, v in PARAMETERS.items()},
            "noise_seed": "numpy default_rng([seed, crc32(corruption), severity])",
            "applied_at": "the model's input size, after resizing", "rounding": "uint8, rint"}
