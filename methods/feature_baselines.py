"""Density and distance baselines on frozen pretrained features: DN2, Gaussian AD, PaDiM.

None of them trains a network: they fit a simple model of the normal images' features.

- ``dn2`` — Bergman, Cohen & Hoshen, "Deep Nearest Neighbor Anomaly Detection", arXiv
  2002.10445 (2020). Global average-pooled features of the backbone's last layer; score = mean
  Euclidean distance to the ``k = 2`` nearest training features. (The paper used an ImageNet
  ResNet-101 at 224 px; here the shared backbones.)
- ``gaussian`` — Rippel, Mertens & Merhof, "Modeling the Distribution of Normal Data in
  Pre-Trained Deep Features for Anomaly Detection", ICPR 2020. One multivariate Gaussian per
  layer on average-pooled features, covariance with Ledoit–Wolf shrinkage; score = sum over
  layers of the Mahalanobis distances. (The paper used every level of an EfficientNet-B4; here
  every tap of the shared backbones: VGG-16 ``pool1..pool5``, ResNet ``layer1..layer4``.)
- ``padim`` — Defard, Setkov, Loesch & Audigier, "PaDiM: a Patch Distribution Modeling
  Framework for Anomaly Detection and Localization", ICPR Workshops 2020 (arXiv 2011.08785).
  Layers 1–3 of a ResNet (VGG-16: ``pool2..pool4``, the same strides 4/8/16), the deeper maps
  upsampled (nearest) to the first one's grid and concatenated, ``d`` channels kept at random
  (seeded from the job seed: 100 for ResNet-18, 550 for WRN-50-2 as in the paper, 200 of 896
  for VGG-16, about the R18 ratio), one Gaussian per position with covariance ``Σ + 0.01·I``;
  map = Mahalanobis distance per position, upsampled bilinearly to the input and smoothed with
  a Gaussian of σ = 4; image score = maximum of the map. Inputs: resize 256, centre crop 224.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf

from bench.core.config import NonNegativeFloat, PositiveFloat, PositiveInt
from bench.datasets.base import TaskData
from bench.methods._pretrained import (
    BACKBONE_PERF,
    BackboneConfig,
    build_extractor,
    collect,
    global_pool,
    layers_for,
    nearest_neighbors,
    size_presets,
    smooth,
    upsample,
)
from bench.methods.backbones import VGG16_TAPS, FeatureExtractor, taps
from bench.methods.base import Method, RunContext, Scores


class _BackboneMethod(Method):
    """A method on one frozen :class:`FeatureExtractor` built at ``fit``."""

    config: BackboneConfig
    fe_: FeatureExtractor
    #: the papers' resize 256 and centre crop 224; the demo datasets' own sizes
    presets = size_presets()
    perf_profile = BACKBONE_PERF

    def default_layers(self) -> tuple[str, ...]:
        raise NotImplementedError

    def layers(self) -> tuple[str, ...]:
        return tuple(self.config.layers) if self.config.layers else self.default_layers()

    def _extractor(self, ctx: RunContext) -> FeatureExtractor:
        self.fe_ = build_extractor(self.config, self.layers(), ctx)
        return self.fe_

    def provenance(self) -> dict[str, object]:
        fe = getattr(self, "fe_", None)
        return {"expert": fe.identity if fe is not None else None, "checkpoint_policy": "final"}


# ------------------------------------------------------------------------------------ DN2


@dataclass(frozen=True, kw_only=True)
class DN2Config(BackboneConfig):
    k: PositiveInt = 2


class DN2(_BackboneMethod):
    """k-NN distance on global features of the last layer."""

    Config = DN2Config
    config: DN2Config

    def default_layers(self) -> tuple[str, ...]:
        return layers_for(self.config.backbone, ("layer4",))

    def _features(self, data: TaskData, ctx: RunContext) -> torch.Tensor:
        layer = self.layers()[-1]
        return collect(self.fe_, data, self.config.batch_size, ctx.device,
                       lambda taps: global_pool(taps[layer]))

    def fit(self, train: TaskData, ctx: RunContext) -> DN2:
        self._extractor(ctx)
        self.bank_ = self._features(train, ctx)
        # fewer training images than k (the few-shot setting, k=1): all of them are the nearest
        self.k_ = min(self.config.k, len(self.bank_))
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        d, _ = nearest_neighbors(self._features(test, ctx), self.bank_, self.k_)
        return Scores(image=d.mean(dim=1).cpu().numpy().astype(np.float64))


# ------------------------------------------------------------------------------- Gaussian


@dataclass(frozen=True, kw_only=True)
class GaussianConfig(BackboneConfig):
    pass


class GaussianAD(_BackboneMethod):
    """Per-layer Gaussian with Ledoit–Wolf shrinkage; summed Mahalanobis distances."""

    Config = GaussianConfig
    config: GaussianConfig

    def default_layers(self) -> tuple[str, ...]:
        if self.config.backbone.startswith("vgg"):
            return tuple(t for t in VGG16_TAPS if t.startswith("pool"))
        return taps(self.config.backbone)  # ResNet layer1..4, EfficientNet-Lite0 stage1..7

    def _features(self, data: TaskData, ctx: RunContext) -> dict[str, np.ndarray]:
        layers = self.layers()
        pooled = collect(self.fe_, data, self.config.batch_size, ctx.device,
                         lambda taps: torch.cat([global_pool(taps[k]) for k in layers], dim=1))
        sizes = [self.fe_.tap_info(k).channels for k in layers]
        parts = torch.split(pooled.double().cpu(), sizes, dim=1)
        return {k: p.numpy() for k, p in zip(layers, parts, strict=True)}

    def fit(self, train: TaskData, ctx: RunContext) -> GaussianAD:
        self._extractor(ctx)
        feats = self._features(train, ctx)
        self.gaussians_ = {k: LedoitWolf().fit(v) for k, v in feats.items()}
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        feats = self._features(test, ctx)
        total = np.zeros(len(test))
        for k, g in self.gaussians_.items():
            total += np.sqrt(np.maximum(g.mahalanobis(feats[k]), 0.0))
        return Scores(image=total)


# ---------------------------------------------------------------------------------- PaDiM

#: channels kept at random per backbone (Defard et al.: R18-Rd100, WR50-Rd550)
#: (EfficientNet-Lite0: 100 of its 176 channels at stage2 + stage3 + stage5)
PADIM_DIMS = {"resnet18": 100, "wide_resnet50_2": 550, "vgg16": 200, "efficientnet_lite0": 100}


@dataclass(frozen=True, kw_only=True)
class PaDiMConfig(BackboneConfig):
    """``n_features=None``: :data:`PADIM_DIMS` for the backbone."""

    n_features: PositiveInt | None = None
    #: added to every covariance's diagonal
    epsilon: PositiveFloat = 0.01
    #: 0: maps not smoothed
    sigma: NonNegativeFloat = 4.0
    position_chunk: PositiveInt = 256


def padim_embedding(taps: dict[str, torch.Tensor], layers: tuple[str, ...]) -> torch.Tensor:
    """Concatenate taps on the first one's grid (deeper maps upsampled, nearest): [B, C, h, w]."""
    first = taps[layers[0]]
    size = first.shape[-2:]
    parts = [first] + [F.interpolate(taps[k], size=size, mode="nearest") for k in layers[1:]]
    return torch.cat(parts, dim=1)


class PaDiM(_BackboneMethod):
    """One Gaussian per patch position on randomly subsampled multi-layer features."""

    Config = PaDiMConfig
    config: PaDiMConfig
    localizes = True

    def default_layers(self) -> tuple[str, ...]:
        return layers_for(self.config.backbone, ("layer1", "layer2", "layer3"))

    def _embed(self, data: TaskData, ctx: RunContext) -> torch.Tensor:
        """[N, d, h, w] on the CPU (kept channels only)."""
        layers = self.layers()
        idx = self.channels_.to(ctx.device)
        return collect(self.fe_, data, self.config.batch_size, ctx.device,
                       lambda taps: padim_embedding(taps, layers).index_select(1, idx).cpu())

    def fit(self, train: TaskData, ctx: RunContext) -> PaDiM:
        cfg = self.config
        fe = self._extractor(ctx)
        total = sum(fe.tap_info(k).channels for k in self.layers())
        d = min(cfg.n_features or PADIM_DIMS[cfg.backbone], total)
        perm = torch.randperm(total, generator=ctx.generator(1))
        self.channels_ = torch.sort(perm[:d]).values
        x = self._embed(train, ctx)                       # [N, d, h, w]
        n, d, h, w = x.shape
        x = x.reshape(n, d, h * w).to(ctx.device)
        mean = x.mean(dim=0, dtype=torch.float64)         # [d, P]
        self.precision_ = torch.empty(h * w, d, d, device=ctx.device)  # the model: P × d × d
        eye = cfg.epsilon * torch.eye(d, dtype=torch.float64, device=ctx.device)
        for p0 in range(0, h * w, cfg.position_chunk):    # float64 only chunk by chunk
            sl = slice(p0, p0 + cfg.position_chunk)
            c = (x[:, :, sl].double() - mean[None, :, sl]).permute(2, 1, 0)  # [p, d, n]
            # one training image (few-shot, k=1) has no sample covariance: Σ = εI, the
            # Mahalanobis distance then a scaled Euclidean distance to that image's embedding
            cov = torch.bmm(c, c.transpose(1, 2)) / max(n - 1, 1) + eye
            self.precision_[sl] = torch.cholesky_inverse(torch.linalg.cholesky(cov)).float()
            ctx.report(min(p0 + cfg.position_chunk, h * w), h * w)
        self.mean_ = mean.float()
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        cfg = self.config
        x = self._embed(test, ctx)
        n, d, h, w = x.shape
        x = x.reshape(n, d, h * w).to(ctx.device)
        dist = torch.empty(n, h * w, device=ctx.device)
        for p0 in range(0, h * w, cfg.position_chunk):
            sl = slice(p0, p0 + cfg.position_chunk)
            diff = (x[:, :, sl] - self.mean_[None, :, sl]).permute(2, 0, 1)  # [p, n, d]
            m2 = (torch.bmm(diff, self.precision_[sl]) * diff).sum(dim=2)    # [p, n]
            dist[:, sl] = m2.t().clamp_min(0).sqrt()
        maps = upsample(dist.reshape(n, h, w).cpu(), test.size).numpy().astype(np.float64)
        maps = smooth(maps, cfg.sigma)
        return Scores(image=maps.reshape(n, -1).max(axis=1), maps=maps)
