"""Training-time augmentations that a method applies per batch, on tensors, on any device.

The paper trains on HeadCT with "20 degree rotation in addition to scaling in range [0.9, 1.05]"
(§4.2.3; not in the released code, which has no HeadCT loader). :func:`headct_affine` is that
transform: each image gets its own rotation angle, uniform in [-20°, 20°], and scale, uniform in
[0.9, 1.05], about the image centre, sampled bilinearly with zero fill outside (as
``torchvision.transforms.RandomAffine(degrees=20, scale=(0.9, 1.05))``). Parameters are drawn
from the generator the method passes (``ctx.generator()``), so runs are reproducible; methods
expose it as a config option (for MKD: the HeadCT preset). Images are assumed square, as every
dataset here delivers them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True, kw_only=True)
class RandomAffine:
    """Random rotation in ``[-degrees, degrees]`` and isotropic scale in ``scale``, per image."""

    degrees: float = 20.0
    scale: tuple[float, float] = (0.9, 1.05)

    def __post_init__(self) -> None:
        if self.degrees < 0 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError("degrees must be >= 0 and 0 < scale[0] <= scale[1]")

    def params(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(angles in degrees [n], scales [n]) drawn on the CPU from ``generator``."""
        u = torch.rand(2, n, generator=generator, dtype=torch.float64)
        angles = (2 * u[0] - 1) * self.degrees
        scales = self.scale[0] + u[1] * (self.scale[1] - self.scale[0])
        return angles, scales

    def apply(self, batch: torch.Tensor, angles: torch.Tensor, scales: torch.Tensor
              ) -> torch.Tensor:
        """Rotate by ``angles`` (degrees, counter-clockwise) and zoom by ``scales``."""
        if batch.ndim != 4:
            raise ValueError("expected a batch N x C x H x W")
        rad = angles * (math.pi / 180.0)
        cos, sin = torch.cos(rad) / scales, torch.sin(rad) / scales
        zero = torch.zeros_like(cos)
        # affine_grid maps output coordinates to input ones: the inverse of the transform
        theta = torch.stack([torch.stack([cos, sin, zero], 1),
                             torch.stack([-sin, cos, zero], 1)], 1)
        theta = theta.to(device=batch.device, dtype=batch.dtype if batch.is_floating_point()
                         else torch.float32)
        src = batch if batch.is_floating_point() else batch.float()
        grid = F.affine_grid(theta, list(src.shape), align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return out if batch.is_floating_point() else out.round().clamp(0, 255).to(batch.dtype)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        angles, scales = self.params(batch.shape[0], generator)
        return self.apply(batch, angles, scales)


#: The paper's HeadCT augmentation.
HEADCT_AFFINE = RandomAffine(degrees=20.0, scale=(0.9, 1.05))


def headct_affine(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's HeadCT training augmentation on a batch ``N x C x H x W``."""
    return HEADCT_AFFINE(batch, generator)
