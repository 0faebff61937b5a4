"""Detectors, registered explicitly by name in :data:`METHODS`.

Each name maps to a :class:`~methods.base.MethodSpec`: a method class plus the config values that
make the variant ("variants are data"). Higher scores always mean more anomalous.

Plugins add names too: installed distributions declaring ``[project.entry-points."bench.methods"]``
(a :class:`~methods.base.Method` subclass or a :class:`~methods.base.MethodSpec` per entry
point), and ``package.module:Class`` names (see :mod:`bench.core.registry`).
"""

from __future__ import annotations

from typing import Any

from bench.core.registry import Registry
from bench.methods.autoencoder import ConvAutoencoderDetector
from bench.methods.base import (
    Method,
    MethodConfig,
    MethodSpec,
    RunContext,
    Scores,
    as_method_spec,
)
from bench.methods.classic import IsolationForestDetector, KDEDetector, OneClassSVMDetector
from bench.methods.dsvdd import DeepSVDDDetector
from bench.methods.feature_baselines import DN2, GaussianAD, PaDiM
from bench.methods.mkd import MKD
from bench.methods.patchcore import PatchCore
from bench.methods.stfpm import STFPM

#: the entry-point group of method plugins
GROUP = "bench.methods"
METHODS: Registry[MethodSpec] = Registry("method", group=GROUP, adapt=as_method_spec)


def register(name: str, cls: type[Method], summary: str, *,
             test_overrides: dict[str, Any] | None = None, **defaults: Any) -> MethodSpec:
    """Register ``cls`` under ``name``, with ``defaults`` making the variant.

    ``test_overrides`` are settings that make the variant tiny for the contract tests.
    """
    spec = MethodSpec(name=name, cls=cls, defaults=defaults, summary=summary,
                      test_overrides=test_overrides or {})
    spec.config()  # fail at import time if the variant's defaults are invalid
    spec.config(overrides=spec.test_overrides)
    return METHODS.add(name, spec)


register("ocsvm", OneClassSVMDetector, "One-class SVM (RBF) on PCA-reduced pixels or features")
register("kde", KDEDetector, "Gaussian KDE on PCA-reduced pixels or features")
register("iforest", IsolationForestDetector, "Isolation Forest on pixels or features")
register("cae", ConvAutoencoderDetector, "Convolutional autoencoder, L2 or SSIM reconstruction "
         "error", test_overrides={"epochs": 6, "batch_size": 8, "lr": 1e-3, "latent_dim": 16,
                         "base_channels": 8})
register("dsvdd", DeepSVDDDetector, "Deep SVDD (one-class or soft-boundary objective)",
         test_overrides={"channels": (8, 4), "rep_dim": 16, "epochs": 5, "lr": 1e-3,
                         "lr_milestones": (), "batch_size": 8, "pretrain_epochs": 2,
                         "pretrain_lr": 1e-3, "pretrain_milestones": ()})

_MKD_TINY = {"expert_weights": "random", "epochs": 5, "image_size": 32}
register("mkd", MKD, "Multiresolution knowledge distillation (Salehi et al. 2021), as its code",
         test_overrides=_MKD_TINY)
register("mkd_single", MKD, "MKD trained and scored on pool5 only (the paper's 1-layer ablation)",
         test_overrides={**_MKD_TINY, "epochs": 10}, layers=("pool5",))

# Pretrained-feature baselines: VGG-16 (MKD's expert) by default so tables compare like with like;
# the ``_r18``/``_wr50`` variants are the papers' own backbones. Sizes come from the presets: the
# papers' resize 256 (+ centre crop 224) on real datasets, the datasets' own sizes on the demo
# data. ``test_overrides``: a random ResNet-18 on the tiny contract-test images.
_TINY = {"backbone": "resnet18", "backbone_weights": "random", "image_size": None, "crop": None}
register("dn2", DN2, "k-NN (k=2) distance on global pretrained features (Bergman et al. 2020)",
         test_overrides=_TINY)
register("gaussian", GaussianAD, "Mahalanobis distance, Ledoit-Wolf Gaussian per layer on "
         "pooled pretrained features (Rippel et al. 2020)", test_overrides=_TINY)
register("padim", PaDiM, "per-position Gaussian on random-subsampled multi-layer patch "
         "features (Defard et al. 2020)", test_overrides={**_TINY, "n_features": 32})
register("padim_r18", PaDiM, "PaDiM, paper setting R18-Rd100", backbone="resnet18",
         test_overrides={**_TINY, "n_features": 32})
register("padim_wr50", PaDiM, "PaDiM, paper setting WR50-Rd550", backbone="wide_resnet50_2",
         test_overrides={**_TINY, "n_features": 32})
_PC_TINY = {**_TINY, "pretrain_dim": 64, "target_dim": 64, "projection_dim": 16}
register("patchcore", PatchCore, "coreset memory bank of locally aware patch features, "
         "nearest-neighbour scores (Roth et al. 2022)", test_overrides=_PC_TINY)
register("patchcore_wr50", PatchCore, "PatchCore, paper setting WRN-50-2, 10% coreset",
         backbone="wide_resnet50_2", test_overrides=_PC_TINY)
_ST_TINY = {**_TINY, "epochs": 3, "batch_size": 8}
register("stfpm", STFPM, "student-teacher feature pyramid matching (Wang et al. 2021)",
         test_overrides=_ST_TINY)
register("stfpm_r18", STFPM, "STFPM, paper setting ResNet-18", backbone="resnet18",
         test_overrides=_ST_TINY)

__all__ = ["GROUP", "METHODS", "Method", "MethodConfig", "MethodSpec", "RunContext", "Scores",
           "register"]
