"""Plumbing shared by the detectors built on a pretrained backbone (DN2, Gaussian, PaDiM,
PatchCore, STFPM): the common config fields, batched feature extraction on ``ctx.device``,
memory-bounded nearest-neighbour search, and anomaly-map post-processing.

Default layers per backbone follow one correspondence, so that VGG-16 (MKD's expert) and the
ResNets tap comparable depths: ResNet ``layerK`` (stride ``2**(K+1)``) ↔ VGG-16 ``pool(K+1)``
(the same stride). For instance PaDiM's ``layer1..3`` become ``pool2..pool4`` on VGG-16.
EfficientNet-Lite0 taps the last stage of each stride: ``layer1..4`` ↔ ``stage2``, ``stage3``,
``stage5``, ``stage7`` (strides 4, 8, 16, 32).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from bench.core.config import PositiveInt, Range, require
from bench.datasets.base import TaskData
from bench.methods.backbones import (
    EFFICIENTNET,
    WEIGHTS,
    FeatureExtractor,
    check_backbone,
    require_weights,
)
from bench.methods.base import ANY_FAMILY, MethodConfig, PerfProfile, RunContext

#: ResNet layer -> the VGG-16 tap of the same stride
_VGG_EQUIVALENT = {"layer1": "pool2", "layer2": "pool3", "layer3": "pool4", "layer4": "pool5"}
#: ResNet layer -> the EfficientNet-Lite0 stage that ends the same stride
_EFFICIENTNET_EQUIVALENT = {"layer1": "stage2", "layer2": "stage3", "layer3": "stage5",
                            "layer4": "stage7"}


def layers_for(backbone: str, resnet_layers: tuple[str, ...]) -> tuple[str, ...]:
    """A method's default taps: ``resnet_layers`` as named on ResNets, their VGG-16 and
    EfficientNet-Lite0 equivalents on those."""
    if backbone.startswith("vgg"):
        return tuple(_VGG_EQUIVALENT[layer] for layer in resnet_layers)
    if backbone == EFFICIENTNET:
        return tuple(_EFFICIENTNET_EQUIVALENT[layer] for layer in resnet_layers)
    return resnet_layers


#: the embedded demo datasets keep their own small sizes (32 / 64 px)
EMBEDDED_FAMILIES = ("digits", "textures")


def size_presets(size: int = 256, crop: int | None = 224,
                 embedded: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """A presets table: the papers' input size (resize ``size``, centre crop ``crop``) for every
    family, and on the embedded demo datasets their own size (a 64 px texture crop is not blown
    up to 256) plus ``embedded``'s values."""
    own = {"image_size": None, "crop": None, **(embedded or {})}
    return {ANY_FAMILY: {"image_size": size, "crop": crop},
            **{family: dict(own) for family in EMBEDDED_FAMILIES}}


#: ``bench perf`` runs a backbone method offline: random weights, no centre crop
BACKBONE_PERF = PerfProfile(offline={"backbone_weights": "random", "crop": None})


@dataclass(frozen=True, kw_only=True)
class BackboneConfig(MethodConfig):
    """Fields every backbone-based method shares.

    ``backbone_weights``: ``imagenet`` (torchvision's ImageNet weights), the path of a
    state_dict file, or ``random`` (only when asked, e.g. offline demos); ``None`` is an error
    that says how to choose. ``normalize``: ImageNet mean/std normalization of the inputs (what
    the ImageNet weights were trained with; it is kept for random weights too, so that a random
    run differs from an ImageNet run only in the weights). ``layers=None`` means the method's
    default taps for the backbone. ``image_size``/``crop``: resize then centre crop
    (``None`` keeps the dataset's default size).
    """

    backbone: str = "vgg16"
    backbone_weights: Annotated[str | None, WEIGHTS] = "imagenet"
    normalize: bool = True
    layers: tuple[str, ...] | None = None
    crop: Annotated[int | None, Range(ge=8)] = None
    batch_size: PositiveInt = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_backbone(self.backbone, self.layers)  # unset or empty: the method's defaults
        require_weights(self.backbone, self.backbone_weights, "backbone_weights")
        require(self.crop is None or (self.image_size is not None
                                      and self.crop <= self.image_size),
                f"crop={self.crop} needs an image_size at least as large, got "
                f"image_size={self.image_size} (set both, or crop=null)")


def build_extractor(cfg: BackboneConfig, layers: tuple[str, ...], ctx: RunContext, *,
                    trainable: bool = False, weights: str | None = None,
                    seed: int | None = None) -> FeatureExtractor:
    """The configured backbone on ``ctx.device``; random weights are seeded from ``ctx.seed``."""
    fe = FeatureExtractor(cfg.backbone, weights if weights is not None else cfg.backbone_weights,
                          layers, seed=ctx.seed if seed is None else seed,
                          normalize=cfg.normalize, trainable=trainable,
                          field="backbone_weights")
    return fe.to(ctx.device)


def feature_batches(fe: FeatureExtractor, data: TaskData, batch_size: int,
                    device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """The extractor's taps for ``data``, batch by batch, in order, without gradients."""
    with torch.no_grad():
        for x in data.batches(batch_size):
            yield fe(x.to(device))


def collect(fe: FeatureExtractor, data: TaskData, batch_size: int, device: torch.device,
            fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    """``fn`` applied to every batch of taps, stacked along the first axis into one tensor
    allocated once (``fn`` pools or projects the taps before they pile up; no second copy)."""
    out: torch.Tensor | None = None
    start = 0
    for taps in feature_batches(fe, data, batch_size, device):
        part = fn(taps)
        if out is None:
            out = part.new_empty((len(data), *part.shape[1:]))
        out[start:start + len(part)] = part
        start += len(part)
    if out is None:
        raise ValueError(f"{data.name or 'data'}: no images")
    return out


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Spatial average: [B, C, H, W] -> [B, C]."""
    return x.mean(dim=(2, 3))


# ------------------------------------------------------------------ nearest-neighbour search


def nearest_neighbors(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, *,
                      query_chunk: int = 4096,
                      bank_chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances and indices of the ``k`` nearest ``bank`` rows of every query.

    Memory is bounded by ``query_chunk × bank_chunk`` distances: the bank is visited in blocks
    (``torch.cdist``) and a running top-k is merged block by block, so a MVTec-sized search
    (10^5 test patches against a 2·10^4-row memory bank) never materializes the full matrix.
    Runs on the queries' device.
    """
    if k < 1 or k > len(bank):
        raise ValueError(f"k must be in [1, {len(bank)}], got {k}")
    bank = bank.to(queries.device)
    dists, index = [], []
    for q0 in range(0, len(queries), query_chunk):
        q = queries[q0:q0 + query_chunk]
        best_d = q.new_full((len(q), 0), float("inf"))
        best_i = torch.empty((len(q), 0), dtype=torch.long, device=q.device)
        for b0 in range(0, len(bank), bank_chunk):
            block = torch.cdist(q, bank[b0:b0 + bank_chunk])
            kk = min(k, block.shape[1])
            d, i = torch.topk(block, kk, dim=1, largest=False, sorted=True)
            cand_d = torch.cat([best_d, d], dim=1)
            cand_i = torch.cat([best_i, i + b0], dim=1)
            best_d, order = torch.topk(cand_d, min(k, cand_d.shape[1]), dim=1, largest=False,
                                       sorted=True)
            best_i = torch.gather(cand_i, 1, order)
        dists.append(best_d)
        index.append(best_i)
    return torch.cat(dists), torch.cat(index)


# -------------------------------------------------------------------------------------- maps


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, h, w] -> [N, H, W], bilinear (``align_corners=False``, as PaDiM/PatchCore/STFPM)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def smooth(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of each map (``scipy.ndimage.gaussian_filter``, as the official PaDiM and
    PatchCore code); ``sigma <= 0`` returns the maps unchanged."""
    if sigma <= 0:
        return maps
    out = np.empty_like(maps)
    for i, m in enumerate(maps):
        out[i] = ndimage.gaussian_filter(m, sigma=sigma)
    return out
