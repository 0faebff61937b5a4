"""Detectors, registered explicitly by name in :data:`METHODS`.

Each name maps to a :class:`~methods.base.MethodSpec`: a method class plus the config values that
make the variant ("variants are data"). Higher scores always mean more anomalous.
"""

from __future__ import annotations

from typing import Any

from bench.registry import Registry
from methods.autoencoder import ConvAutoencoderDetector
from methods.base import Method, MethodConfig, MethodSpec, RunContext, Scores
from methods.classic import IsolationForestDetector, KDEDetector, OneClassSVMDetector
from methods.dsvdd import DeepSVDDDetector
from methods.mkd import MKD

METHODS: Registry[MethodSpec] = Registry("method")


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

__all__ = ["METHODS", "Method", "MethodConfig", "MethodSpec", "RunContext", "Scores", "register"]
