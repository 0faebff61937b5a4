"""MKD's networks as pure ``nn.Module``s: the cloner, its critical-layer taps, guided ReLUs.

The expert is VGG-16's ``.features`` from :mod:`methods.backbones` (critical layers ``pool2..pool5``
= features 9/16/23/30). The cloner follows the official code's ``make_layers(cfg, batch_norm=True)``
(REFERENCE §1.3):

- 3×3 convolutions (padding 1, no bias, Xavier-uniform weights), in VGG-style blocks each closed
  by ``MaxPool2d(2, 2)``;
- BatchNorm (PyTorch defaults) + ReLU after every conv, except the last conv of each block,
  which gets ReLU only;
- ``compact`` = the official cfg 'B' ``[16,16,M, 16,128,M, 16,16,256,M, 16,16,512,M, 16,16,512,M]``
  (0.344 M parameters); ``equal`` = cfg 'A', VGG-16's widths (the paper's cloner-size ablation).

Module indices equal the official ones (``features.N``), so the critical points are cloner
indices 11/20/29/38 and an official ``Cloner_*.pth`` state dict loads into ``features``. The
cloner is only built up to the deepest trained critical layer: deeper blocks would never receive
a gradient.

An extension the paper does not have: an EfficientNet-Lite0 expert (``expert=efficientnet_lite0``).
Its critical layers keep the names ``pool2..pool5`` and mean the same strides (4, 8, 16, 32): the
last stage output at each stride, ``stage2``/``stage3``/``stage5``/``stage7`` with 24/40/112/320
channels (:data:`EXPERT_TAPS`). Its compact cloner is cfg 'B' with the width of each block's last
conv set to those channels (:data:`CLONER_CFGS`); there is no ``equal`` cloner for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

CRITICAL_LAYERS = ("pool2", "pool3", "pool4", "pool5")
#: the paper's test-time score and localization use pool3–pool5 only (REFERENCE §2.3)
OFFICIAL_SCORE_LAYERS = ("pool3", "pool4", "pool5")

CLONER_CFGS: dict[str, tuple[int | str, ...]] = {
    "compact": (16, 16, "M", 16, 128, "M", 16, 16, 256, "M", 16, 16, 512, "M", 16, 16, 512, "M"),
    "equal": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}
#: channels of each critical layer (identical in expert and cloner)
LAYER_CHANNELS = {"pool2": 128, "pool3": 256, "pool4": 512, "pool5": 512}

#: experts MKD knows; the first is the paper's
EXPERTS = ("vgg16", "efficientnet_lite0")
#: critical layer -> the expert's tap of the same stride
EXPERT_TAPS: dict[str, dict[str, str]] = {
    "vgg16": {layer: layer for layer in CRITICAL_LAYERS},
    "efficientnet_lite0": {"pool2": "stage2", "pool3": "stage3", "pool4": "stage5",
                           "pool5": "stage7"},
}
#: critical layer -> channels, per expert
EXPERT_CHANNELS: dict[str, dict[str, int]] = {
    "vgg16": LAYER_CHANNELS,
    "efficientnet_lite0": {"pool2": 24, "pool3": 40, "pool4": 112, "pool5": 320},
}
#: the cloners of each expert: cfg 'B' with each block's last width = the expert's channels
EXPERT_CLONER_CFGS: dict[str, dict[str, tuple[int | str, ...]]] = {
    "vgg16": CLONER_CFGS,
    "efficientnet_lite0": {"compact": (16, 16, "M", 16, 24, "M", 16, 16, 40, "M",
                                       16, 16, 112, "M", 16, 16, 320, "M")},
}


class CriticalTaps(nn.Module):
    """An expert's taps under MKD's critical-layer names (``stage7`` -> ``pool5``, ...)."""

    def __init__(self, extractor: nn.Module, names: dict[str, str]) -> None:
        super().__init__()
        self.extractor = extractor
        self.names = dict(names)  # critical layer -> the extractor's tap
        self.identity: str = str(getattr(extractor, "identity", ""))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.extractor(x)
        return {layer: out[tap] for layer, tap in self.names.items()}


def pool_number(layer: str) -> int:
    """``pool3`` -> 3 (the block that the layer closes)."""
    if layer not in CRITICAL_LAYERS:
        raise ValueError(f"unknown critical layer {layer!r}; choose from {CRITICAL_LAYERS}")
    return int(layer[4])


def _make_layers(cfg: Sequence[int | str], generator: torch.Generator | None
                 ) -> tuple[nn.Sequential, dict[int, str]]:
    layers: list[nn.Module] = []
    taps: dict[int, str] = {}
    in_channels = 3
    for i, item in enumerate(cfg):
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            taps[len(layers) - 1] = f"pool{len(taps) + 1}"
            continue
        out = int(item)
        conv = nn.Conv2d(in_channels, out, kernel_size=3, padding=1, bias=False)
        nn.init.xavier_uniform_(conv.weight, generator=generator)
        if cfg[i + 1] != "M":
            layers += [conv, nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        else:  # the conv closing a block: ReLU only, as the official make_layers
            layers += [conv, nn.ReLU(inplace=True)]
        in_channels = out
    return nn.Sequential(*layers), taps


class Cloner(nn.Module):
    """The student network C, tapped at the requested critical layers.

    Args:
        layers: critical layers to return (any non-empty subset of ``pool2..pool5``).
        size: ``compact`` (official default, cfg 'B') or ``equal`` (VGG-16 widths, cfg 'A').
        generator: seeds the Xavier-uniform conv weights (no global RNG is touched).
        expert: whose channels the taps match (:data:`EXPERT_CLONER_CFGS`).
    """

    def __init__(self, layers: Sequence[str], size: str = "compact",
                 generator: torch.Generator | None = None, expert: str = "vgg16") -> None:
        super().__init__()
        cfgs = EXPERT_CLONER_CFGS.get(expert)
        if cfgs is None:
            raise ValueError(f"unknown expert {expert!r}; choose from {EXPERTS}")
        if size not in cfgs:
            raise ValueError(f"no {size!r} cloner for {expert}; choose from {tuple(cfgs)}")
        if not layers:
            raise ValueError("the cloner needs at least one critical layer")
        deepest = max(pool_number(layer) for layer in layers)
        cfg = cfgs[size]
        # keep the blocks up to the deepest requested pool
        ends = [i for i, c in enumerate(cfg) if c == "M"]
        cut = ends[deepest - 1] + 1
        with torch.random.fork_rng(devices=[]):  # default inits draw from the global RNG
            self.features, all_taps = _make_layers(cfg[:cut], generator)
        self.layers = tuple(layers)
        self.taps = {i: name for i, name in all_taps.items() if name in self.layers}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self.taps:
                out[self.taps[i]] = x
        return out


class _GuidedReLUFunction(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients through positive activations."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad.clamp(min=0) * (out > 0).to(grad.dtype)


class GuidedReLU(nn.Module):
    """Guided backpropagation's ReLU (Springenberg et al. 2015), as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedReLUFunction.apply(x)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily replace every ``nn.ReLU`` inside ``model`` by :class:`GuidedReLU`.

    The official code hooks the cloner's ReLUs only (the expert's stay plain); this is the same
    rule, ``grad_in = (out > 0) · max(grad_out, 0)``, without its deprecated, in-place hooks.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                swapped.append((parent, name, child))
                setattr(parent, name, GuidedReLU())
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


# ------------------------------------------------------------------------- loss and score


def layer_terms(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: ``1 − cos`` of the flattened C·H·W activations, and their mean squared difference.

    Computed in float32 (also under autocast), with ``eps=1e-8`` as ``nn.CosineSimilarity``.
    """
    p = pred.float().flatten(1)
    t = target.float().flatten(1)
    direction = 1.0 - torch.nn.functional.cosine_similarity(p, t, dim=1, eps=1e-8)
    value = (p - t).pow(2).mean(dim=1)
    return direction, value


def _combine(direction: torch.Tensor, value: torch.Tensor, lamda: float,
             terms: str) -> torch.Tensor:
    if terms == "total":
        return direction + lamda * value
    if terms == "direction":
        return direction
    if terms == "value":
        return value
    raise ValueError(f"unknown loss_terms {terms!r}")


def training_loss(preds: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                  layers: Sequence[str], lamda: float, terms: str = "total") -> torch.Tensor:
    """The official ``MseDirectionLoss``: ``Σ_l mean_batch(1 − cos_l) + λ · Σ_l MSE_l``.

    ``terms='direction'`` is ``DirectionOnlyLoss``; ``terms='value'`` is ``Σ_l MSE_l`` (λ would
    only rescale a lone term).
    """
    direction = preds[layers[0]].new_zeros((), dtype=torch.float32)
    value = direction.clone()
    for layer in layers:
        p = preds[layer].float().flatten(1)
        t = targets[layer].float().flatten(1)
        cos = torch.nn.functional.cosine_similarity(p, t, dim=1, eps=1e-8)
        direction = direction + (1.0 - cos).mean()
        value = value + torch.nn.functional.mse_loss(p, t)
    return _combine(direction, value, lamda, terms)


def image_scores(preds: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 layers: Sequence[str], lamda: float, terms: str = "total") -> torch.Tensor:
    """The official test-time score per image: ``Σ_l [(1 − cos_l) + λ · mean_CHW(diff²)]``."""
    total: torch.Tensor | None = None
    for layer in layers:
        d, v = layer_terms(preds[layer], targets[layer])
        s = _combine(d, v, lamda, terms)
        total = s if total is None else total + s
    assert total is not None
    return total
