"""Classic one-class detectors from scikit-learn, on pixels or on a backbone's pooled features.

Features (``features``):

- ``pixels`` (default): each image flattened (all channels, at the method's ``image_size``; the
  dataset's default when unset), values in [0, 1], nothing standardized.
- ``backbone``: a frozen :class:`~methods.backbones.FeatureExtractor` (``backbone``, default
  ``vgg16``; ``backbone_weights`` ``imagenet`` | a state-dict path | ``random``, no default: a
  backbone without weights is the backbones module's clear error), ImageNet-normalized input,
  one tap (``backbone_layer``; unset means the last stage: ``pool5`` for VGG-16, ``layer4`` for
  ResNets), global-average-pooled to one vector per image (``batch_size`` images per forward
  pass, on the job's device). The extractor's identity (e.g.
  ``vgg16:imagenet:IMAGENET1K_V1:sha256=...``) is the record's ``expert``; ``None`` on pixels.

Then, optionally, PCA fitted on the training normals keeping ``pca_variance`` of the variance (at
most ``n_train - 1`` components, not whitened; ``pca_variance=None`` skips PCA), and one model.
For OC-SVM, grey images stored as C identical channels (MNIST, Fashion-MNIST, digits) get the PCA
of one channel: the components of the C-fold copy are ``(v, …, v) / √C`` with C times the variance
(the same variance ratios), so its projections are ``Σ_c (x_c − m) · v / √C``, computed as such
(:func:`repeated_channels`): the same numbers up to rounding, at a ninth of the SVD's cost for
C = 3 (6,000 Fashion-MNIST images: 1,024 columns instead of 3,072).
``max_train`` fits on a seeded random subset of the training normals (the Retinal-OCT preset uses
5,000 of its ~26,000; every other preset uses all of them):

- ``ocsvm``: one-class SVM (Schölkopf et al., Neural Computation 2001) with an RBF kernel,
  ``gamma='scale'`` (1 / (n_features · Var(X))), ``nu=0.1``, PCA to 95 % variance;
  score = minus the decision function.
- ``kde``: Gaussian kernel density estimate, Scott's bandwidth rule, PCA to 95 % variance (Ruff
  et al., ICML 2018, reduce with PCA before KDE); score = minus the log density (scikit-learn's
  ``KernelDensity``). KDE does not fold repeated channels: scikit-learn's tree is not exact in
  ~100 dimensions (measured on random data: log densities tens to hundreds of nats above the
  exact sum), and rounding-level changes of its input moved the pinned ``ci`` AUROC of digit 8
  by 0.007, so it keeps the PCA of all channels.
- ``iforest``: Isolation Forest (Liu, Ting and Zhou, ICDM 2008) with the paper's standard
  settings: 100 trees, sub-sampling size ψ = 256 (``min(256, n_train)``), all features, no PCA
  (the forest picks single features, so it works on raw attributes); seeded from the job seed;
  score = the paper's anomaly score s(x, ψ) in (0, 1] (minus scikit-learn's ``score_samples``).

These are the classic baselines of one-class image benchmarks (Ruff et al., ICML 2018, use
OC-SVM, KDE and IF on raw pixels). Their grid-searched hyper-parameters (OC-SVM's ν and γ chosen
with a small labelled test subset) need labelled anomalies and are deliberately not used here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM

from bench.core.config import Fraction, PositiveFloat, PositiveInt, Range
from bench.datasets.base import TaskData
from bench.methods.backbones import (
    EFFICIENTNET,
    WEIGHTS,
    FeatureExtractor,
    check_backbone,
    require_weights,
    taps,
)
from bench.methods.base import Method, MethodConfig, PerfProfile, RunContext, Scores

Features = Literal["pixels", "backbone"]


def pixel_features(data: TaskData, channel: int | None = None) -> np.ndarray:
    """Flattened float pixels in [0, 1], one row per image (of one ``channel`` if given)."""
    images = data.images if channel is None else data.images[:, channel]
    return images.reshape(len(data), -1).numpy().astype(np.float32) / np.float32(255.0)


def repeated_channels(data: TaskData) -> bool:
    """Whether every image's channels are identical copies (grey images stored as RGB)."""
    x = data.images
    return x.shape[1] > 1 and all(torch.equal(x[:, 0], x[:, c]) for c in range(1, x.shape[1]))


def default_layer(backbone: str) -> str:
    """The last stage of a backbone: ``pool5`` for VGG, ``layer4`` for ResNets, ``stage7`` for
    EfficientNet-Lite0."""
    return taps(backbone)[-1] if backbone == EFFICIENTNET else (
        "pool5" if backbone.startswith("vgg") else "layer4")


@torch.inference_mode()
def pooled_features(extractor: FeatureExtractor, layer: str, data: TaskData, batch_size: int,
                    device: torch.device) -> np.ndarray:
    """Global-average-pooled activations of ``layer``, one row per image."""
    extractor.to(device)
    rows = [extractor(x.to(device))[layer].mean(dim=(2, 3)).double().cpu()
            for x in data.batches(batch_size)]
    return torch.cat(rows).numpy()


@dataclass(frozen=True, kw_only=True)
class FeatureConfig(MethodConfig):
    features: Features = "pixels"
    backbone: str = "vgg16"
    backbone_weights: Annotated[str | None, WEIGHTS] = None
    backbone_layer: str | None = None
    batch_size: PositiveInt = 64
    #: None: no PCA
    pca_variance: Fraction | None = 0.95
    #: fit on at most this many training images (a seeded random subset); None = all of them
    max_train: Annotated[int | None, Range(ge=2)] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_backbone(self.backbone, None if self.backbone_layer is None
                       else [self.backbone_layer], "backbone_layer")


class _FeatureMethod(Method):
    """Pixels or backbone features -> optional PCA -> a scikit-learn density or boundary model."""

    config: Any

    extractor_: FeatureExtractor | None = None

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        if getattr(config, "features", "pixels") == "backbone":
            require_weights(config.backbone, config.backbone_weights,  # type: ignore[attr-defined]
                            "backbone_weights")

    #: Retinal-OCT has ~26k training normals: 26k x 128 x 128 x 3 pixels do not fit in memory
    #: as features, and kernel methods scale quadratically, so fit on a seeded 5,000 subset.
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"retinal_oct": {"max_train": 5000}}
    #: ``bench perf``: random weights when the features come from a backbone
    perf_profile = PerfProfile(offline={"backbone_weights": "random"})

    #: fit PCA on one channel of images whose channels repeat (see the module docstring)
    fold_channels: ClassVar[bool] = True
    folded_: bool = False

    def _features(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        if self.extractor_ is None:
            return pixel_features(data)
        return pooled_features(self.extractor_, self.extractor_.layers[0], data,
                               self.config.batch_size, ctx.device)

    def _fit_features(self, train: TaskData, ctx: RunContext) -> np.ndarray:
        cfg = self.config
        if cfg.features == "backbone":
            layer = cfg.backbone_layer or default_layer(cfg.backbone)
            self.extractor_ = FeatureExtractor(cfg.backbone, cfg.backbone_weights, [layer],
                                               seed=ctx.seed, normalize=True,
                                               field="backbone_weights")
        if cfg.max_train is not None and len(train) > cfg.max_train:
            keep = np.sort(ctx.rng(offset=17).choice(len(train), cfg.max_train, replace=False))
            train = train.subset(keep)
        if self.config.pca_variance is None:
            self.pca_ = None
            return self._features(train, ctx)
        self.folded_ = (self.fold_channels and self.extractor_ is None
                        and repeated_channels(train))
        x = pixel_features(train, 0) if self.folded_ else self._features(train, ctx)
        n_max = max(1, min(x.shape[0] - 1, x.shape[1]))
        self.pca_ = PCA(n_components=n_max, svd_solver="full", random_state=ctx.seed).fit(x)
        ratio = np.cumsum(self.pca_.explained_variance_ratio_)
        self.n_components_ = int(min(n_max, np.searchsorted(ratio, self.config.pca_variance) + 1))
        return self._project(x) * (np.sqrt(train.images.shape[1]) if self.folded_ else 1.0)

    def _test_features(self, test: TaskData, ctx: RunContext) -> np.ndarray:
        return self._reduce(test, ctx) if self.pca_ is not None else self._features(test, ctx)

    def _project(self, x: np.ndarray) -> np.ndarray:
        assert self.pca_ is not None
        return np.asarray(self.pca_.transform(x)[:, : self.n_components_])

    def _reduce(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """PCA projections; folded: ``Σ_c (x_c − m) · v / √C`` (one pass when channels repeat)."""
        if not self.folded_:
            return self._project(self._features(data, ctx))
        n_channels = data.images.shape[1]
        if repeated_channels(data):
            return self._project(pixel_features(data, 0)) * np.sqrt(n_channels)
        total = sum(self._project(pixel_features(data, c)) for c in range(n_channels))
        return np.asarray(total) / np.sqrt(n_channels)

    def provenance(self) -> dict[str, Any]:
        """The backbone's identity as ``expert`` once fitted on backbone features, else None."""
        extractor = self.extractor_
        return {"expert": extractor.identity if extractor is not None else None,
                "checkpoint_policy": "final"}


@dataclass(frozen=True, kw_only=True)
class OCSVMConfig(FeatureConfig):
    nu: Fraction = 0.1
    #: a number > 0, or scikit-learn's rules 'scale' (1 / (n_features · Var(X))) and 'auto'
    gamma: PositiveFloat | Literal["scale", "auto"] = "scale"
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"


class OneClassSVMDetector(_FeatureMethod):
    """One-class SVM (Schölkopf et al. 2001) on PCA-reduced pixels or backbone features."""

    Config = OCSVMConfig
    config: OCSVMConfig

    def fit(self, train: TaskData, ctx: RunContext) -> OneClassSVMDetector:
        z = self._fit_features(train, ctx)
        self.model_ = OneClassSVM(kernel=self.config.kernel, nu=self.config.nu,
                                  gamma=self.config.gamma)
        self.model_.fit(z)
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        return Scores(image=-self.model_.decision_function(self._test_features(test, ctx)))


@dataclass(frozen=True, kw_only=True)
class KDEConfig(FeatureConfig):
    #: a number > 0, or scikit-learn's rules 'scott' and 'silverman'
    bandwidth: PositiveFloat | Literal["scott", "silverman"] = "scott"


class KDEDetector(_FeatureMethod):
    """Gaussian kernel density on PCA-reduced pixels or backbone features."""

    Config = KDEConfig
    config: KDEConfig
    fold_channels = False  # see the module docstring: its tree is not exact

    def fit(self, train: TaskData, ctx: RunContext) -> KDEDetector:
        z = self._fit_features(train, ctx)
        self.model_ = KernelDensity(kernel="gaussian", bandwidth=self.config.bandwidth).fit(z)
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        return Scores(image=-self.model_.score_samples(self._test_features(test, ctx)))


@dataclass(frozen=True, kw_only=True)
class IForestConfig(FeatureConfig):
    pca_variance: Fraction | None = None
    n_estimators: PositiveInt = 100
    max_samples: Annotated[int, Range(ge=2)] = 256
    max_features: Fraction = 1.0


class IsolationForestDetector(_FeatureMethod):
    """Isolation Forest (Liu et al. 2008) on pixels or backbone features, seeded by the job."""

    Config = IForestConfig
    config: IForestConfig

    def fit(self, train: TaskData, ctx: RunContext) -> IsolationForestDetector:
        z = self._fit_features(train, ctx)
        cfg = self.config
        self.model_ = IsolationForest(n_estimators=cfg.n_estimators,
                                      max_samples=min(cfg.max_samples, len(z)),
                                      max_features=cfg.max_features,
                                      random_state=ctx.seed).fit(z)
        ctx.report(1, 1)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        return Scores(image=-self.model_.score_samples(self._test_features(test, ctx)))
