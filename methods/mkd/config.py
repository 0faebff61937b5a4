"""MKD's config and its presets per dataset family (REFERENCE §1.4, §3, §8.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from bench.core.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    require,
)
from bench.methods.backbones import WEIGHTS, check_backbone
from bench.methods.base import MethodConfig
from bench.methods.mkd.nets import (
    CRITICAL_LAYERS,
    EXPERT_CLONER_CFGS,
    OFFICIAL_SCORE_LAYERS,
    pool_number,
)

Layer = Literal["pool2", "pool3", "pool4", "pool5"]

#: per dataset family (REFERENCE §1.4, §3, §8.2); epochs = the official num_epochs + 1
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "mnist": {"image_size": 32, "normalize": "none", "epochs": 52, "lamda": 0.01,
              "eval_every": 10},
    "fashion_mnist": {"image_size": 32, "normalize": "none", "epochs": 52, "lamda": 0.01,
                      "eval_every": 10},
    "cifar10": {"image_size": 256, "crop": 224, "interpolation": "lanczos",
                "normalize": "imagenet", "epochs": 202, "lamda": 0.01, "eval_every": 10},
    "mvtec": {"image_size": 128, "epochs": 602, "lamda": 0.5, "eval_every": 10},
    "retinal_oct": {"image_size": 128, "epochs": 202, "lamda": 0.01, "eval_every": 10},
    # not in the official code: the paper's sizes (REFERENCE §4), λ of "Others", and as many
    # passes as MVTec, the other small training sets (90 images: 2 batches per epoch)
    "headct": {"image_size": 128, "epochs": 602, "lamda": 0.01, "eval_every": 10},
    "brainmri": {"image_size": 256, "epochs": 602, "lamda": 0.01, "eval_every": 10},
    # embedded demo data, sized for the demo budget: digits like MNIST, textures like MVTec
    "digits": {"image_size": 32, "epochs": 20, "lamda": 0.01},
    "textures": {"image_size": 64, "epochs": 10, "lamda": 0.5},
}



@dataclass(frozen=True, kw_only=True)
class MKDConfig(MethodConfig):
    """MKD settings; class defaults follow the official ``config.yaml``, presets the datasets."""

    #: ``vgg16`` (the paper's); ``efficientnet_lite0``: an extension the paper does not have
    #: (critical layers = its stage outputs of the same strides, a matching compact cloner)
    expert: Literal["vgg16", "efficientnet_lite0"] = "vgg16"
    #: ``imagenet`` | a state_dict path | ``random``; None is an error telling how to choose
    expert_weights: Annotated[str | None, WEIGHTS] = None
    layers: tuple[Layer, ...] = CRITICAL_LAYERS  # type: ignore[assignment]
    #: ``official``: pool3–pool5 among the trained layers (all trained layers if none of them);
    #: ``trained``: every trained layer
    score_layers: Literal["official", "trained"] = "official"
    cloner: Literal["compact", "equal"] = "compact"
    #: weight of the MSE ("value") term, as in the code (0.01; MVTec 0.5)
    lamda: NonNegativeFloat = 0.01
    loss_terms: Literal["total", "direction", "value"] = "total"
    #: passes run (the official loop runs num_epochs + 1)
    epochs: PositiveInt = 202
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    normalize: Literal["none", "imagenet"] = "none"
    crop: Annotated[int | None, Range(ge=8)] = None
    interpolation: Literal["bilinear", "lanczos"] = "bilinear"
    #: evaluate on the test set every N epochs (and at the last); 0 = final only
    eval_every: NonNegativeInt = 0
    #: the evaluations the ``*_converged_*`` metrics average: 0 = the second half of training
    #: (epoch >= last evaluated epoch / 2), K = the last K evaluations
    converged_window: NonNegativeInt = 0
    #: with ``eval_every``, also localize at each evaluation when the test set has masks, so
    #: pixel metrics get a history (``pixel_auroc_mkd_converged_mean``, the like-for-like of the
    #: paper's Table 4): one gradient pass over the test set per evaluation
    eval_localization: bool = True
    localization: Literal["gradients", "smoothgrad", "gbp", "none"] = "gradients"
    smoothgrad_samples: PositiveInt = 50
    #: None: 0.15 (standard) or 0.05 (official)
    smoothgrad_noise: PositiveFloat | None = None
    #: standard: std = noise · (x_max − x_min); official: std = (noise / (x_max − x_min))²
    smoothgrad_noise_mode: Literal["standard", "official"] = "standard"
    gaussian_sigma: NonNegativeFloat = 4.0
    opening: bool = True
    augment: Literal["none", "headct"] = "none"
    expert_cache: Literal["auto", "on", "off"] = "auto"
    #: the dtype of the expert's activations (the cloner's targets, cached or not): ``exact``
    #: keeps the dtype the expert returns (float32; bfloat16 under ``amp``), bit for bit;
    #: ``bfloat16`` rounds them (the expert still runs in float32): half the cache's bytes, and
    #: it moves the numbers, so it is an opt-in with the accuracy guard of ``amp``
    #: (tests/methods/test_mkd_cache_dtype.py; failed on 2026-12-02, see performance.md).
    #: Rounded wherever they are used (uncached batches, scoring, localization's forward
    #: values), so the numbers do not depend on the cache budget.
    cache_dtype: Literal["exact", "bfloat16"] = "exact"
    #: None: half the free GPU memory, or a quarter of the available RAM on the CPU
    cache_budget_mb: NonNegativeInt | None = None
    #: bf16 autocast of both networks, on the CPU and on CUDA alike (loss and score in float32;
    #: the expert cache then holds bfloat16, half the bytes); off by default: it moves the
    #: numbers (demo AUROCs by at most 0.002: tests/methods/test_mkd_bf16_cpu.py and _gpu.py)
    amp: bool = False
    #: the channels_last memory format for both networks (CPU and CUDA)
    channels_last: bool = False
    #: compile the expert and the cloner with ``torch.compile`` (CPU and CUDA; the first batch of
    #: each shape and mode pays the compilation)
    compile: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.layers), "layers=[]: name at least one of pool2, pool3, pool4, pool5")
        require(len(set(self.layers)) == len(self.layers),
                f"layers={list(self.layers)!r} has duplicates; name each layer once")
        require(self.crop is None or self.image_size is None or self.crop <= self.image_size,
                f"crop={self.crop} exceeds image_size={self.image_size}; a centre crop must "
                "fit in the resized image")
        require(self.cloner in EXPERT_CLONER_CFGS[self.expert],
                f"cloner={self.cloner!r} is not defined for expert={self.expert}; choose from: "
                f"{', '.join(EXPERT_CLONER_CFGS[self.expert])}")
        if self.expert != "vgg16":
            check_backbone(self.expert, None)  # the extra it needs, in one line
        require(self.augment == "none" or self.expert_cache != "on",
                f"augment={self.augment!r} changes every batch, so expert_cache cannot be 'on' "
                "(use 'auto' or 'off')")

    @property
    def trained_layers(self) -> tuple[str, ...]:
        """The trained layers in network order."""
        return tuple(sorted(self.layers, key=pool_number))

    @property
    def scored_layers(self) -> tuple[str, ...]:
        """The layers of the anomaly score and of the localization gradients."""
        trained = self.trained_layers
        if self.score_layers == "trained":
            return trained
        official = tuple(layer for layer in trained if layer in OFFICIAL_SCORE_LAYERS)
        return official or trained

    @property
    def noise_level(self) -> float:
        if self.smoothgrad_noise is not None:
            return self.smoothgrad_noise
        return 0.15 if self.smoothgrad_noise_mode == "standard" else 0.05
