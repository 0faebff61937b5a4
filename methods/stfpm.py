"""STFPM — Wang, Wu & Gu, "Student-Teacher Feature Pyramid Matching for Anomaly Detection",
BMVC 2021 (arXiv 2103.04257).

A frozen pretrained teacher and a student of the same architecture, randomly initialized
(seeded; built by :func:`methods.backbones.build_trunk` with ``frozen=False``) and trained from
scratch on normal images to reproduce the teacher's features at three levels: ResNet-18
``layer1..layer3`` in the paper; VGG-16 ``pool2..pool4`` here (the same strides 4/8/16, and
three of MKD's critical layers).

- Loss per image: ``Σ_l 1/(2·h_l·w_l) Σ_{i,j} ‖F̂_t^l(i,j) − F̂_s^l(i,j)‖²``, with ``F̂`` the
  features L2-normalized along channels; averaged over the batch.
- Training (paper): SGD, learning rate 0.4, momentum 0.9, weight decay 1e-4, batch 32,
  100 epochs, 256×256 inputs with ImageNet normalization. The student keeps its final weights
  (checkpoint policy ``final``). ``eval_every > 0`` records test metrics every that many
  epochs in ``history_`` (for convergence plots; never used to choose a checkpoint).
- Test: per level ``½‖F̂_t − F̂_s‖²`` at each position, upsampled bilinearly to the input; the
  anomaly map is the product over levels; the image score is the maximum of the map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F

from bench.core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range
from bench.datasets.base import TaskData
from bench.methods._pretrained import (
    BACKBONE_PERF,
    BackboneConfig,
    build_extractor,
    layers_for,
    size_presets,
    upsample,
)
from bench.methods.backbones import FeatureExtractor
from bench.methods.base import Method, RunContext, Scores

#: offset between the teacher's and the student's random seeds (a random teacher and its
#: student must not start from the same weights)
STUDENT_SEED_OFFSET = 1_000_003


@dataclass(frozen=True, kw_only=True)
class STFPMConfig(BackboneConfig):
    epochs: PositiveInt = 100
    lr: PositiveFloat = 0.4
    momentum: Annotated[float, Range(ge=0, lt=1)] = 0.9
    weight_decay: NonNegativeFloat = 1e-4
    #: 0: no evaluation during training
    eval_every: NonNegativeInt = 0
    #: the evaluations the ``*_converged_*`` metrics average: 0 = the second half of training
    #: (epoch >= last evaluated epoch / 2), K = the last K evaluations
    converged_window: NonNegativeInt = 0


def level_distances(t: dict[str, torch.Tensor], s: dict[str, torch.Tensor],
                    layers: tuple[str, ...]) -> list[torch.Tensor]:
    """Per level, ``½‖F̂_t − F̂_s‖²`` at every position: a list of [B, h_l, w_l]."""
    return [0.5 * (F.normalize(t[k], dim=1) - F.normalize(s[k], dim=1)).pow(2).sum(dim=1)
            for k in layers]


class STFPM(Method):
    """Student–teacher feature pyramid matching."""

    Config = STFPMConfig
    config: STFPMConfig
    localizes = True
    #: the paper's 256 px without a crop; a few epochs on the embedded demo data
    presets = size_presets(size=256, crop=None, embedded={"epochs": 5})
    perf_profile = BACKBONE_PERF

    def layers(self) -> tuple[str, ...]:
        cfg = self.config
        return tuple(cfg.layers) if cfg.layers else layers_for(
            cfg.backbone, ("layer1", "layer2", "layer3"))

    def provenance(self) -> dict[str, object]:
        teacher = getattr(self, "teacher_", None)
        return {"expert": teacher.identity if teacher is not None else None,
                "checkpoint_policy": "final"}

    def fit(self, train: TaskData, ctx: RunContext) -> STFPM:
        cfg = self.config
        layers = self.layers()
        self.teacher_ = build_extractor(cfg, layers, ctx)
        self.student_: FeatureExtractor = build_extractor(
            cfg, layers, ctx, trainable=True, weights="random",
            seed=ctx.seed + STUDENT_SEED_OFFSET)
        opt = torch.optim.SGD(self.student_.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        g = ctx.generator(3)
        n = len(train)
        self.losses_: list[float] = []
        for epoch in range(1, cfg.epochs + 1):
            self.student_.train()
            order = torch.randperm(n, generator=g)
            total = 0.0
            for b0 in range(0, n, cfg.batch_size):
                x = train.batch(order[b0:b0 + cfg.batch_size]).to(ctx.device)
                with torch.no_grad():
                    t = self.teacher_(x)
                s = self.student_(x)
                levels = level_distances(t, s, layers)
                loss = torch.stack([d.mean(dim=(1, 2)) for d in levels]).sum(dim=0).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
            self.losses_.append(total / n)
            if not math.isfinite(self.losses_[-1]):
                raise FloatingPointError(f"STFPM loss diverged at epoch {epoch} (lr={cfg.lr})")
            if cfg.eval_every and epoch % cfg.eval_every == 0 and ctx.eval_data is not None \
                    and ctx.evaluate is not None:
                metrics = ctx.evaluate(ctx.eval_data, self.score(ctx.eval_data, ctx))
                self.history_.append({"epoch": epoch, "loss": self.losses_[-1], **metrics})
            ctx.report(epoch, cfg.epochs)
        self.student_.eval()
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        layers = self.layers()
        self.student_.eval()
        maps = []
        with torch.no_grad():
            for x in test.batches(self.config.batch_size):
                x = x.to(ctx.device)
                levels = level_distances(self.teacher_(x), self.student_(x), layers)
                m = torch.ones(len(x), *test.size, device=ctx.device)
                for d in levels:
                    m = m * upsample(d, test.size)
                maps.append(m.cpu())
        out = torch.cat(maps).double().numpy()
        return Scores(image=out.reshape(len(out), -1).max(axis=1), maps=out)
