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

Speed without changing the numbers: the teacher is frozen and sees the same training images
every epoch, so its normalized features ``F̂_t`` are computed once per fit and reused
(``teacher_cache``, up to ``cache_budget_mb``; the rest are recomputed per batch): each epoch
then runs only the student's forward and backward passes. The cache keeps the teacher's memory
format, so the loss reduces in the same order and the numbers are bit for bit those without it
(tested).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import psutil
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
    #: the frozen teacher's normalized features of the training images, computed once and
    #: reused every epoch (the same numbers): ``auto`` caches as many images as
    #: ``cache_budget_mb`` allows and recomputes the rest per batch, ``on`` all, ``off`` none
    teacher_cache: Literal["auto", "on", "off"] = "auto"
    #: None: half the free GPU memory, or a quarter of the available RAM on the CPU
    cache_budget_mb: NonNegativeInt | None = None


def normalized(feats: dict[str, torch.Tensor], layers: tuple[str, ...]
               ) -> dict[str, torch.Tensor]:
    """Features L2-normalized along channels (``F̂``), per level."""
    return {k: F.normalize(feats[k], dim=1) for k in layers}


def level_distances(t: dict[str, torch.Tensor], s: dict[str, torch.Tensor],
                    layers: tuple[str, ...], *, t_normalized: bool = False
                    ) -> list[torch.Tensor]:
    """Per level, ``½‖F̂_t − F̂_s‖²`` at every position: a list of [B, h_l, w_l].

    ``t_normalized``: ``t`` already holds ``F̂_t`` (the teacher cache).
    """
    tn = t if t_normalized else normalized(t, layers)
    return [0.5 * (tn[k] - F.normalize(s[k], dim=1)).pow(2).sum(dim=1) for k in layers]


def memory_format(t: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-d tensor laid out so (and not also plainly contiguous)."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _budget_bytes(mb: int | None, device: torch.device) -> int:
    if mb is not None:
        return mb * 2**20
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return int(psutil.virtual_memory().available * 0.25)


class TeacherCache:
    """The teacher's normalized features of the first ``n`` training images, filled in place
    batch by batch (one copy); ``lookup`` computes the uncached images of a batch on the fly."""

    def __init__(self, teacher: FeatureExtractor, train: TaskData, layers: tuple[str, ...],
                 n: int, batch_size: int, device: torch.device) -> None:
        self.n = n
        self.store: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for b0 in range(0, n, batch_size):
                x = train.batch(slice(b0, min(n, b0 + batch_size))).to(device)
                for k, v in normalized(teacher(x), layers).items():
                    if k not in self.store:  # in the teacher's memory format (oneDNN often
                        # returns channels_last): the loss then reduces in the same order
                        self.store[k] = torch.empty((n, *v.shape[1:]), dtype=v.dtype,
                                                    device=v.device,
                                                    memory_format=memory_format(v))
                    self.store[k][b0:b0 + len(v)] = v

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.store.values())

    def lookup(self, idx: torch.Tensor, x: torch.Tensor, teacher: FeatureExtractor,
               layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """``F̂_t`` of the batch ``x`` (training images ``idx``)."""
        hit = idx < self.n
        if bool(hit.all()):
            dev_idx = idx.to(x.device)
            return {k: v[dev_idx] for k, v in self.store.items()}
        with torch.no_grad():
            miss = normalized(teacher(x[~hit.to(x.device)]), layers)
        if not bool(hit.any()):
            return miss
        out = {}
        for k, v in self.store.items():
            full = torch.empty((len(idx), *v.shape[1:]), dtype=v.dtype, device=v.device,
                               memory_format=memory_format(v))
            hit_d = hit.to(v.device)
            full[hit_d] = v[idx[hit].to(v.device)]
            full[~hit_d] = miss[k]
            out[k] = full
        return out


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
        t0 = time.perf_counter()
        cache = self._teacher_cache(train, layers, ctx)
        self.cache_info_ = {"cached": cache.n if cache else 0,
                            "cache_mb": (cache.nbytes if cache else 0) / 2**20,
                            "fill_s": time.perf_counter() - t0}
        self.losses_: list[float] = []
        for epoch in range(1, cfg.epochs + 1):
            self.student_.train()
            order = torch.randperm(n, generator=g)
            total = 0.0
            for b0 in range(0, n, cfg.batch_size):
                idx = order[b0:b0 + cfg.batch_size]
                x = train.batch(idx).to(ctx.device)
                if cache is not None:
                    t = cache.lookup(idx, x, self.teacher_, layers)
                else:
                    with torch.no_grad():
                        t = normalized(self.teacher_(x), layers)
                s = self.student_(x)
                levels = level_distances(t, s, layers, t_normalized=True)
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

    def _teacher_cache(self, train: TaskData, layers: tuple[str, ...], ctx: RunContext
                       ) -> TeacherCache | None:
        cfg = self.config
        if cfg.teacher_cache == "off" or cfg.epochs < 2:  # one epoch reuses nothing
            return None
        n = len(train)
        if cfg.teacher_cache == "auto":
            per_image = 0
            for layer in layers:
                info = self.teacher_.tap_info(layer)
                h, w = (-(-s // info.stride) for s in train.size)  # strides round up
                per_image += info.channels * h * w * 4
            n = min(n, _budget_bytes(cfg.cache_budget_mb, ctx.device) // max(1, per_image))
        if n == 0:
            return None
        return TeacherCache(self.teacher_, train, layers, n, cfg.batch_size, ctx.device)

    def fit_info(self) -> dict[str, float]:
        """The teacher cache of the last fit: images cached, MiB, seconds to fill."""
        info = getattr(self, "cache_info_", None)
        if not info:
            return {}
        return {"cached_images": float(info["cached"]), "cache_mb": float(info["cache_mb"]),
                "cache_fill_s": float(info["fill_s"])}

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
