"""Structural similarity (Wang, Bovik, Sheikh and Simoncelli, IEEE TIP 2004) in torch.

The standard settings: an 11×11 Gaussian window with σ = 1.5 (separable, normalized to sum 1),
K1 = 0.01, K2 = 0.03, C1 = (K1·L)², C2 = (K2·L)² with data range L (1 for images in [0, 1]),
population (not sample) covariances. Borders are padded symmetrically (edge pixel repeated, as
``scipy.ndimage``'s ``reflect`` mode), so the full map equals scikit-image's
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, full=True)`` channel by channel. Differentiable, so it also serves as a loss
(Bergmann et al., VISAPP 2019, train and score their SSIM autoencoder with it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, *,
                    dtype: torch.dtype = torch.float32,
                    device: torch.device | None = None) -> torch.Tensor:
    """A normalized 1-D Gaussian of ``size`` taps."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _pad_symmetric(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    if pad > n:
        raise ValueError(f"SSIM needs images of at least {pad} pixels per side, got {n}")
    head = x.narrow(dim, 0, pad).flip(dim)
    tail = x.narrow(dim, n - pad, pad).flip(dim)
    return torch.cat([head, x, tail], dim=dim)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of an [N, C, H, W] tensor, same size out."""
    c = x.shape[1]
    pad = g.numel() // 2
    x = _pad_symmetric(_pad_symmetric(x, pad, 2), pad, 3)
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0,
             window: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """Per-pixel SSIM of two [N, C, H, W] batches, per channel: [N, C, H, W], 1 where equal."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_map needs two N x C x H x W tensors, got {x.shape} and {y.shape}")
    g = gaussian_window(window, sigma, dtype=x.dtype, device=x.device)
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    var_x = _blur(x * x, g) - mu_x**2
    var_y = _blur(y * y, g) - mu_y**2
    cov = _blur(x * y, g) - mu_x * mu_y
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image, [N], over the map without the window's half-width at each border
    (scikit-image's convention for the mean)."""
    m = ssim_map(x, y, data_range=data_range)
    p = WINDOW // 2
    return m[..., p:-p, p:-p].mean(dim=(1, 2, 3))
