"""MKD's localization maps from input gradients: SmoothGrad's noise, the official code's
grey-scale conversion, the Gaussian and the opening, batched over the images of a pass.

Two maps come from each gradient: the raw map ``Σ_c|g|`` (the standard pixel metrics) and the
official code's map (``Scores.extra_maps['mkd_code']``, its localization protocol).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from bench.core.metrics import CROSS_3x3

#: the ``Scores.extra_maps`` name of the official code's maps
CODE_MAPS = "mkd_code"


def smoothgrad_std(x: torch.Tensor, level: float, mode: str) -> torch.Tensor:
    """SmoothGrad's noise std per image of the batch ``x`` (shape N×1×1×1).

    ``standard``: ``level · (x_max − x_min)``; ``official``: the official code's
    ``σ = level / (x_max − x_min)`` passed as σ² to ``normal_(mean, std)``.
    """
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).float()
    if mode == "standard":
        std = level * span
    else:
        std = torch.where(span > 0, (level / span.clamp(min=1e-12)) ** 2,
                          torch.zeros_like(span))
    return std.view(-1, 1, 1, 1)


def channel_sum(grad: np.ndarray) -> np.ndarray:
    """The raw map of gradients N×C×H×W: ``Σ_c|g|`` (float32)."""
    return np.abs(grad).sum(axis=1, dtype=np.float32)


def grayscale_p99(grad: np.ndarray) -> np.ndarray:
    """The official ``convert_to_grayscale``, batched: Σ_c|g|, then (x − min)/(p99 − min) in [0,1].

    Where p99 equals the minimum (the official code divides by zero) pixels above the minimum
    become 1 and the others 0, the limit of the formula.
    """
    gray = channel_sum(grad)
    flat = gray.reshape(len(gray), -1)
    lo = flat.min(axis=1, keepdims=True)
    hi = np.percentile(flat, 99, axis=1, keepdims=True).astype(np.float32)
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.clip((flat - lo) / np.where(span > 0, span, 1), 0, 1)
    out = np.where(span > 0, scaled, (flat > lo).astype(np.float32))
    return out.reshape(gray.shape).astype(np.float32)


def minmax(maps: np.ndarray) -> np.ndarray:
    """Per-image (x − min)/(max − min); a constant map becomes zeros."""
    flat = maps.reshape(len(maps), -1)
    lo = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - lo
    out = (flat - lo) / np.where(span > 0, span, 1)
    return out.reshape(maps.shape).astype(np.float32)


def gaussian(maps: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(σ)`` on each map (the official call, batched)."""
    if sigma <= 0:
        return maps
    return ndimage.gaussian_filter(maps, sigma=(0, sigma, sigma)).astype(np.float32)


def opening(maps: np.ndarray) -> np.ndarray:
    """Grey-scale opening of each map with the 3×3 cross (cv2's 3×3 ellipse)."""
    return ndimage.grey_opening(maps, footprint=CROSS_3x3[None]).astype(np.float32)


def finish_maps(raw: np.ndarray, code: np.ndarray, sigma: float,
                with_opening: bool) -> tuple[np.ndarray, np.ndarray]:
    """The last steps of both maps: the Gaussian on each, the opening on the raw maps if asked
    (the official protocol's metric opens the code maps itself, at every threshold)."""
    raw = gaussian(raw, sigma)
    return (opening(raw) if with_opening else raw), gaussian(code, sigma)
