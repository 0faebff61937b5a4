"""Classic one-class detectors from scikit-learn, on pixels.

Both flatten each image (all channels, at the method's ``image_size``; the dataset's default when
unset), standardize nothing, and reduce dimension with PCA fitted on the training normals,
keeping ``pca_variance`` of the variance (at most ``n_train - 1`` components), whitened off.

- ``ocsvm``: one-class SVM (Schölkopf et al. 2001) with an RBF kernel, ``gamma='scale'``
  (1 / (n_features · Var(X))) and ``nu=0.1``; score = minus the decision function.
- ``kde``: Gaussian kernel density estimate with Scott's bandwidth rule on the PCA features;
  score = minus the log density.

These are the "classic" baselines of one-class image benchmarks (as in Ruff et al., ICML 2018,
who use OC-SVM and KDE on raw pixels with PCA for KDE); exact grid-searched hyper-parameters of
those papers need labelled anomalies and are deliberately not used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM

from datasets.base import TaskData
from methods.base import Method, MethodConfig, RunContext, Scores


def _number_or_name(value: str) -> str | float:
    """'scale' stays a name; '0.5' becomes a number (sklearn accepts both)."""
    try:
        return float(value)
    except ValueError:
        return value


def pixel_features(data: TaskData) -> np.ndarray:
    """Flattened float pixels in [0, 1], one row per image."""
    return data.images.reshape(len(data), -1).numpy().astype(np.float64) / 255.0


@dataclass(frozen=True, kw_only=True)
class PCAConfig(MethodConfig):
    pca_variance: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.pca_variance <= 1:
            raise ValueError("pca_variance must be in (0, 1]")


class _PCAMethod(Method):
    """Pixels -> PCA -> a scikit-learn density or boundary model."""

    config: Any

    def _reduce_fit(self, x: np.ndarray, ctx: RunContext) -> np.ndarray:
        n_max = max(1, min(x.shape[0] - 1, x.shape[1]))
        self.pca_ = PCA(n_components=n_max, svd_solver="full", random_state=ctx.seed).fit(x)
        ratio = np.cumsum(self.pca_.explained_variance_ratio_)
        self.n_components_ = int(min(n_max, np.searchsorted(ratio, self.config.pca_variance) + 1))
        return self._reduce(x)

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.pca_.transform(x)[:, : self.n_components_])


@dataclass(frozen=True, kw_only=True)
class OCSVMConfig(PCAConfig):
    nu: float = 0.1
    gamma: str = "scale"
    kernel: str = "rbf"


class OneClassSVMDetector(_PCAMethod):
    """One-class SVM on PCA-reduced pixels."""

    Config = OCSVMConfig
    config: OCSVMConfig

    def fit(self, train: TaskData, ctx: RunContext) -> OneClassSVMDetector:
        z = self._reduce_fit(pixel_features(train), ctx)
        self.model_ = OneClassSVM(kernel=self.config.kernel, nu=self.config.nu,
                                  gamma=_number_or_name(self.config.gamma))
        self.model_.fit(z)
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        z = self._reduce(pixel_features(test))
        return Scores(image=-self.model_.decision_function(z))


@dataclass(frozen=True, kw_only=True)
class KDEConfig(PCAConfig):
    bandwidth: str = "scott"


class KDEDetector(_PCAMethod):
    """Gaussian kernel density on PCA-reduced pixels."""

    Config = KDEConfig
    config: KDEConfig

    def fit(self, train: TaskData, ctx: RunContext) -> KDEDetector:
        z = self._reduce_fit(pixel_features(train), ctx)
        bandwidth = _number_or_name(self.config.bandwidth)
        self.model_ = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(z)
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        z = self._reduce(pixel_features(test))
        return Scores(image=-self.model_.score_samples(z))
