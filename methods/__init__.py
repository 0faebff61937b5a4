"""Detectors, registered explicitly by name in :data:`METHODS`.

Each name maps to a :class:`~methods.base.MethodSpec`: a method class plus the config values that
make the variant ("variants are data"). Higher scores always mean more anomalous.
"""

from __future__ import annotations

from typing import Any

from bench.registry import Registry
from methods.base import Method, MethodConfig, MethodSpec, RunContext, Scores
from methods.classic import KDEDetector, OneClassSVMDetector

METHODS: Registry[MethodSpec] = Registry("method")


def register(name: str, cls: type[Method], summary: str, **defaults: Any) -> MethodSpec:
    """Register ``cls`` under ``name``, with ``defaults`` making the variant."""
    spec = MethodSpec(name=name, cls=cls, defaults=defaults, summary=summary)
    spec.config()  # fail at import time if the variant's defaults are invalid
    return METHODS.add(name, spec)


register("ocsvm", OneClassSVMDetector, "One-class SVM (RBF) on PCA-reduced pixels")
register("kde", KDEDetector, "Gaussian KDE on PCA-reduced pixels")

__all__ = ["METHODS", "Method", "MethodConfig", "MethodSpec", "RunContext", "Scores", "register"]
