"""``cae``: a convolutional autoencoder scored by its reconstruction error (L2 or SSIM).

The classic reconstruction baseline of one-class image benchmarks (the "AE" / "SSIM-AE" rows of
MVTec AD, Bergmann et al., VISAPP 2019 and IJCV 2021): train an autoencoder on normal images only
and call a pixel anomalous when it is reconstructed badly.

Architecture (:class:`ConvAutoencoder`, fully specified by input size and three numbers):

- encoder: ``k`` stages of ``Conv 4×4 stride 2`` + BatchNorm + LeakyReLU(0.2) (DCGAN-style),
  widths ``base_channels · 2^i`` capped at ``8 · base_channels``; ``k`` halves the input while
  the side is even and above 8 (32 px → 8×8 after 2 stages, 64 → 3, 128 → 4, 256 → 5, 28 → 7×7
  after 2), so any even size of at least 16 px works;
- bottleneck: a linear layer to ``latent_dim`` numbers (a dense bottleneck as in Bergmann et
  al., whose latent size 100 is the default) and a linear layer back;
- decoder: the mirror image with ``ConvTranspose 4×4 stride 2`` + BatchNorm + LeakyReLU, the
  last one to the image channels with a sigmoid (images are in [0, 1]). No layer works at full
  resolution beyond the first and the last, which keeps it cheap on CPUs.

Grey-scale data stored as RGB runs on one channel.

Training: Adam (``lr`` 2e-4, ``weight_decay`` 1e-5, batch 128: Bergmann et al.'s settings) on the
normals, minimizing the same error that scores (``error``): ``l2`` the mean squared error,
``ssim`` the mean of 1 − SSIM (11×11 Gaussian window, σ 1.5; :mod:`methods.ssim`). Initialization
and batch order are seeded from the job seed.

Scores: the per-pixel error ``e`` (``l2``: squared error averaged over channels; ``ssim``:
1 − SSIM averaged over channels), at the input resolution. ``maps`` = ``e`` smoothed with a
Gaussian of ``map_sigma`` pixels (0: raw). Image score (``image_score``): ``mean`` = mean of the
raw ``e`` (the classic reconstruction error, the default), or ``max`` = maximum of the smoothed
map (for small local defects: the textures and MVTec presets use it). ``map_sigma`` defaults to
4, the smoothing MKD applies to its own maps, so that the two localize on the same footing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from bench.core.errors import UsageError
from bench.datasets.base import TaskData
from bench.methods import _torch as T
from bench.methods.base import Method, MethodConfig, RunContext, Scores
from bench.methods.ssim import ssim_map

Error = Literal["l2", "ssim"]


def n_stages(size: int) -> int:
    """How many stride-2 stages the autoencoder uses for a side of ``size`` pixels."""
    k = 0
    while size % 2 == 0 and size > 8:
        size //= 2
        k += 1
    return k


class ConvAutoencoder(nn.Module):
    """Images [N, C, H, W] in [0, 1] to reconstructions of the same shape (see module doc)."""

    def __init__(self, channels: int, size: tuple[int, int], latent_dim: int = 100,
                 base_channels: int = 32) -> None:
        super().__init__()
        h, w = size
        k = n_stages(min(h, w))
        if k == 0 or h % 2**k or w % 2**k:
            raise UsageError(f"cae needs an even image side of at least 16 px, got {h}x{w}; "
                             "set image_size (e.g. 32, 64, 128, 256)")
        widths = [min(base_channels * 2**i, 8 * base_channels) for i in range(k)]
        enc: list[nn.Module] = []
        c = channels
        for width in widths:
            enc += [nn.Conv2d(c, width, 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
            c = width
        self.encoder = nn.Sequential(*enc)
        self.bottom = (c, h // 2**k, w // 2**k)
        flat = c * self.bottom[1] * self.bottom[2]
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat), nn.LeakyReLU(0.2))
        dec: list[nn.Module] = []
        for i in reversed(range(1, k)):
            dec += [nn.ConvTranspose2d(c, widths[i - 1], 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(widths[i - 1]), nn.LeakyReLU(0.2)]
            c = widths[i - 1]
        dec += [nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(self.encode(x)).view(-1, *self.bottom)
        return self.decoder(h)


def pixel_error(x: torch.Tensor, recon: torch.Tensor, error: Error) -> torch.Tensor:
    """Per-pixel reconstruction error [N, H, W], averaged over channels; 0 when equal."""
    if error == "l2":
        return (x - recon).pow(2).mean(dim=1)
    return (1.0 - ssim_map(x, recon)).mean(dim=1)


@dataclass(frozen=True, kw_only=True)
class CAEConfig(MethodConfig):
    error: Error = "l2"
    latent_dim: PositiveInt = 100
    base_channels: PositiveInt = 32
    epochs: NonNegativeInt = 100
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 2e-4
    weight_decay: NonNegativeFloat = 1e-5
    image_score: Literal["mean", "max"] = "mean"
    #: 0: raw maps
    map_sigma: NonNegativeFloat = 4.0


class ConvAutoencoderDetector(Method):
    """Convolutional autoencoder; L2 or SSIM reconstruction error; maps at input resolution."""

    Config = CAEConfig
    config: CAEConfig
    localizes = True
    #: dataset family -> settings. Demo families are sized for minutes on two CPU cores (a
    #: higher lr for the few epochs); paper families follow Bergmann et al. (latent 100, 128 px
    #: for MVTec-like data). Where anomalies are local defects (``textures``, ``mvtec``) the image
    #: score is the maximum of the smoothed map; where they are other classes (digits, CIFAR-10,
    #: medical) the mean error. Retinal-OCT has ~26,000 training normals: 20 epochs are about as
    #: many updates as 100 on CIFAR-10's 5,000 per class.
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "digits": {"latent_dim": 32, "base_channels": 16, "epochs": 10, "batch_size": 16,
                   "lr": 1e-3},
        "textures": {"latent_dim": 100, "base_channels": 16, "epochs": 10, "batch_size": 8,
                     "lr": 1e-3, "image_score": "max"},
        "mnist": {"image_size": 28, "latent_dim": 32, "epochs": 100},
        "fashion_mnist": {"image_size": 28, "latent_dim": 32, "epochs": 100},
        "cifar10": {"image_size": 32, "latent_dim": 128, "epochs": 100},
        "mvtec": {"image_size": 128, "latent_dim": 100, "epochs": 200, "image_score": "max"},
        "retinal_oct": {"image_size": 128, "latent_dim": 100, "epochs": 20},
        "headct": {"image_size": 128, "latent_dim": 100, "epochs": 200, "batch_size": 32},
        "brainmri": {"image_size": 128, "latent_dim": 100, "epochs": 200, "batch_size": 32},
    }

    def fit(self, train: TaskData, ctx: RunContext) -> ConvAutoencoderDetector:
        cfg = self.config
        self.gray_ = T.is_gray(train.images)
        channels = 1 if self.gray_ else train.channels
        with T.seeded(ctx.seed):
            net = ConvAutoencoder(channels, train.size, cfg.latent_dim, cfg.base_channels)
        net.to(ctx.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        order = ctx.generator()
        for epoch in range(cfg.epochs):
            net.train()
            for x in T.shuffled(train, cfg.batch_size, self.gray_, order):
                x = x.to(ctx.device)
                loss = pixel_error(x, net(x), cfg.error).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            ctx.report(epoch + 1, cfg.epochs)
        self.net_ = net.eval()
        return self

    @torch.inference_mode()
    def error_maps(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Raw per-pixel reconstruction errors [N, H, W]."""
        self.net_.to(ctx.device)
        out = []
        for x in T.ordered(data, self.config.batch_size, self.gray_):
            x = x.to(ctx.device)
            out.append(pixel_error(x, self.net_(x), self.config.error).double().cpu())
        return torch.cat(out).numpy()

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        raw = self.error_maps(test, ctx)
        maps = T.smooth_maps(raw, self.config.map_sigma)
        if self.config.image_score == "mean":
            image = raw.mean(axis=(1, 2))
        else:
            image = maps.max(axis=(1, 2))
        return Scores(image=image, maps=maps)
