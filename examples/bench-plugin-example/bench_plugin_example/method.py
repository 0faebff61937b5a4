"""``example_distance``: distance to the mean training feature, in a random network's features.

A small convolutional network with fixed random weights (drawn from the job seed: never the
global RNG) turns each image into a feature map at a quarter of its size. Fitting keeps, at every
position, the mean and the spread of the training features; the anomaly map is the distance to
that mean in units of the spread, averaged over channels and upsampled to the image size; the
image score is the map's mean (or maximum). Higher means more anomalous, as bench requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from bench.core.config import PositiveInt
from bench.datasets.base import TaskData
from bench.methods.base import Method, MethodConfig, MethodSpec, RunContext, Scores


@dataclass(frozen=True, kw_only=True)
class RandomFeatureDistanceConfig(MethodConfig):
    #: channels of the random network
    width: PositiveInt = 16
    #: how the map becomes the image score
    reduce: Literal["mean", "max"] = "mean"
    batch_size: PositiveInt = 64


class RandomFeatureDistance(Method):
    """Distance to the mean training feature in a random-weight conv net's features."""

    Config = RandomFeatureDistanceConfig
    config: RandomFeatureDistanceConfig
    localizes = True  # score() returns maps of the images' size

    def _weights(self, ctx: RunContext, channels: int) -> list[torch.Tensor]:
        g = ctx.generator(offset=1)  # seeded from the job: same seed, same network
        w = self.config.width
        return [torch.randn(w, channels, 3, 3, generator=g) / (3 * channels) ** 0.5,
                torch.randn(w, w, 3, 3, generator=g) / (3 * w) ** 0.5]

    def _features(self, test: TaskData, ctx: RunContext) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for x in test.batches(self.config.batch_size):
                for w in self.weights_:
                    x = F.avg_pool2d(F.relu(F.conv2d(x.to(ctx.device), w.to(ctx.device),
                                                     padding=1)), 2)
                out.append(x.cpu())
        return torch.cat(out)

    def fit(self, train: TaskData, ctx: RunContext) -> RandomFeatureDistance:
        self.weights_ = self._weights(ctx, train.channels)
        feats = self._features(train, ctx)  # N x C x h x w
        self.mean_ = feats.mean(dim=0)
        self.std_ = feats.std(dim=0, unbiased=False) + 1e-3
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        z = ((self._features(test, ctx) - self.mean_) / self.std_).abs().mean(dim=1)
        maps = F.interpolate(z[:, None], size=test.size, mode="bilinear",
                             align_corners=False)[:, 0].numpy()
        image = maps.max(axis=(1, 2)) if self.config.reduce == "max" else maps.mean(axis=(1, 2))
        return Scores(image=image, maps=maps)


#: a second registered name: the same class with other config values (variants are data)
MAX_VARIANT = MethodSpec(name="example_distance_max", cls=RandomFeatureDistance,
                         defaults={"reduce": "max"},
                         summary="the same, image score = the map's maximum",
                         test_overrides={"width": 8})
