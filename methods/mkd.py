"""MKD: Multiresolution Knowledge Distillation for anomaly detection (Salehi et al., CVPR 2021).

A compact cloner C learns to reproduce a frozen VGG-16 expert S at its critical layers (the
max-pools ``pool2..pool5``) on normal images; a test image scores by how far C is from S. This
module computes what the official code computes (README "MKD" lists every deliberate difference):

- **loss** (``MseDirectionLoss``): ``Σ_l mean_batch(1 − cos_l) + λ · Σ_l MSE_l`` over the trained
  layers, cos on the flattened C·H·W activations; Adam (lr 1e-3), batches of 64, shuffled, no
  schedule, cloner in train mode (BatchNorm!) while training and in eval mode when scoring;
- **score**: ``Σ_l [(1 − cos_l) + λ · mean_CHW(diff²)]`` over ``pool3..pool5`` (the official code
  leaves pool2 out of the score although it trains on it) — ``score_layers='trained'`` scores
  every trained layer instead;
- **epochs** is the number of passes actually run: the official loop runs ``num_epochs + 1``
  passes, so the presets hold 52 (MNIST), 202 (CIFAR-10), 602 (MVTec);
- **localization**: gradients of the per-image score w.r.t. the network input, through expert and
  cloner, ``|·|`` summed over channels; SmoothGrad; guided backprop on the cloner's ReLUs; then a
  Gaussian (σ = 4) and an opening with the 3×3 cross. ``Scores.maps`` holds these raw maps (for
  the standard pixel metrics); ``Scores.extra_maps['mkd_code']`` the official post-processing
  (per image ``(g − min)/(p99 − min)`` clipped to [0, 1], then the Gaussian; the metric opens).

Speed without changing the math: the frozen expert's activations of the training images are
computed once per job and reused every epoch (up to a memory budget; the rest are recomputed per
batch); evaluation during training reuses the expert's activations of the test images the same
way; localization is batched (one backward of the summed per-image scores gives every image's
gradient, since images are independent in eval mode). On CUDA, optional bf16 autocast and
channels_last.

Checkpoint policy: the final epoch is the headline; with ``eval_every > 0`` the history gives
the mean ± std after convergence (the paper's protocol) and the optimistic best-on-test value.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psutil
import torch
from scipy import ndimage
from torch import nn

from bench.core.errors import UsageError
from bench.core.metrics import CROSS_3x3
from bench.datasets.augment import headct_affine
from bench.datasets.base import TaskData
from bench.methods.backbones import FeatureExtractor, Normalize, require_weights
from bench.methods.base import Method, MethodConfig, RunContext, Scores
from bench.methods.mkd_nets import (
    CRITICAL_LAYERS,
    LAYER_CHANNELS,
    OFFICIAL_SCORE_LAYERS,
    Cloner,
    guided_relus,
    image_scores,
    pool_number,
    training_loss,
)

log = logging.getLogger(__name__)

Layer = Literal["pool2", "pool3", "pool4", "pool5"]
Taps = dict[str, torch.Tensor]

#: per dataset family (REFERENCE §1.4, §3, §8.2); epochs = the official num_epochs + 1
PRESETS: dict[str, dict[str, Any]] = {
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

    expert: Literal["vgg16"] = "vgg16"
    #: ``imagenet`` | a state_dict path | ``random``; None is an error telling how to choose
    expert_weights: str | None = None
    layers: tuple[Layer, ...] = CRITICAL_LAYERS  # type: ignore[assignment]
    #: ``official``: pool3–pool5 among the trained layers (all trained layers if none of them);
    #: ``trained``: every trained layer
    score_layers: Literal["official", "trained"] = "official"
    cloner: Literal["compact", "equal"] = "compact"
    #: weight of the MSE ("value") term, as in the code (0.01; MVTec 0.5)
    lamda: float = 0.01
    loss_terms: Literal["total", "direction", "value"] = "total"
    #: passes run (the official loop runs num_epochs + 1)
    epochs: int = 202
    batch_size: int = 64
    lr: float = 1e-3
    normalize: Literal["none", "imagenet"] = "none"
    crop: int | None = None
    interpolation: Literal["bilinear", "lanczos"] = "bilinear"
    #: evaluate on the test set every N epochs (and at the last); 0 = final only
    eval_every: int = 0
    localization: Literal["gradients", "smoothgrad", "gbp", "none"] = "gradients"
    smoothgrad_samples: int = 50
    #: None: 0.15 (standard) or 0.05 (official)
    smoothgrad_noise: float | None = None
    #: standard: std = noise · (x_max − x_min); official: std = (noise / (x_max − x_min))²
    smoothgrad_noise_mode: Literal["standard", "official"] = "standard"
    gaussian_sigma: float = 4.0
    opening: bool = True
    augment: Literal["none", "headct"] = "none"
    expert_cache: Literal["auto", "on", "off"] = "auto"
    #: None: half the free GPU memory, or a quarter of the available RAM on the CPU
    cache_budget_mb: int | None = None
    amp: bool = False
    channels_last: bool = False
    #: compile the expert and the cloner with ``torch.compile`` (CPU and CUDA; the first batch of
    #: each shape and mode pays the compilation)
    compile: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.layers:
            raise ValueError("layers needs at least one of pool2..pool5")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers has duplicates: {list(self.layers)}")
        for name in ("epochs", "batch_size", "smoothgrad_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0 (0 = final epoch only)")
        if self.lr <= 0 or self.lamda < 0 or self.gaussian_sigma < 0:
            raise ValueError("lr must be > 0, lamda and gaussian_sigma >= 0")
        if self.smoothgrad_noise is not None and self.smoothgrad_noise <= 0:
            raise ValueError("smoothgrad_noise must be > 0")
        if self.cache_budget_mb is not None and self.cache_budget_mb < 0:
            raise ValueError("cache_budget_mb must be >= 0")
        if self.crop is not None and self.image_size is not None and self.crop > self.image_size:
            raise ValueError("crop must not exceed image_size")
        if self.augment != "none" and self.expert_cache == "on":
            raise ValueError("augment changes every batch, so the expert cache cannot be 'on'")

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


# --------------------------------------------------------------------------- map processing


def grayscale_p99(grad: np.ndarray) -> np.ndarray:
    """The official ``convert_to_grayscale``, batched: Σ_c|g|, then (x − min)/(p99 − min) in [0,1].

    Where p99 equals the minimum (the official code divides by zero) pixels above the minimum
    become 1 and the others 0, the limit of the formula.
    """
    gray = np.abs(grad).sum(axis=1, dtype=np.float32)
    flat = gray.reshape(len(gray), -1)
    lo = flat.min(axis=1, keepdims=True)
    hi = np.percentile(flat, 99, axis=1, keepdims=True).astype(np.float32)
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.clip((flat - lo) / np.where(span > 0, span, 1), 0, 1)
    out = np.where(span > 0, scaled, (flat > lo).astype(np.float32))
    return out.reshape(gray.shape).astype(np.float32)


def minmax(maps: np.ndarray) -> np.ndarray:
    """Per-image (x − min)/(max − min); a constant map becomes zeros."""
    flat = maps.reshape(len(maps), -1)
    lo = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - lo
    out = (flat - lo) / np.where(span > 0, span, 1)
    return out.reshape(maps.shape).astype(np.float32)


def gaussian(maps: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(σ)`` on each map (the official call, batched)."""
    if sigma <= 0:
        return maps
    return ndimage.gaussian_filter(maps, sigma=(0, sigma, sigma)).astype(np.float32)


def opening(maps: np.ndarray) -> np.ndarray:
    """Grey-scale opening of each map with the 3×3 cross (cv2's 3×3 ellipse)."""
    return ndimage.grey_opening(maps, footprint=CROSS_3x3[None]).astype(np.float32)


# ------------------------------------------------------------------------------ expert cache


def tap_bytes(layers: tuple[str, ...], size: tuple[int, int], dtype: torch.dtype) -> int:
    """Bytes of one image's expert activations at ``layers`` (VGG pools halve with floor)."""
    total = 0
    for layer in layers:
        h, w = size
        for _ in range(pool_number(layer)):
            h, w = h // 2, w // 2
        total += LAYER_CHANNELS[layer] * h * w
    return total * torch.empty((), dtype=dtype).element_size()


def default_budget_mb(device: torch.device) -> int:
    """Half the free GPU memory, or a quarter of the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5 / 2**20)
    return int(psutil.virtual_memory().available * 0.25 / 2**20)


class ExpertCache:
    """The expert's activations of the first ``n`` images of a fixed set, computed once.

    ``lookup`` returns the activations of a batch, computing the uncached ones on the fly.
    """

    def __init__(self, store: dict[str, torch.Tensor], n: int) -> None:
        self.store = store
        self.n = n

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.store.values())

    def lookup(self, idx: torch.Tensor, compute: Callable[[torch.Tensor], Taps]) -> Taps:
        hit = idx < self.n
        if bool(hit.all()):
            dev_idx = idx.to(next(iter(self.store.values())).device)
            return {k: v[dev_idx] for k, v in self.store.items()}
        missing = compute(~hit)
        if not bool(hit.any()):
            return missing
        out = {}
        for k, v in self.store.items():
            full = v.new_empty((len(idx), *v.shape[1:]))
            hit_d = hit.to(v.device)
            full[hit_d] = v[idx[hit].to(v.device)]
            full[~hit_d] = missing[k].to(v.dtype)
            out[k] = full
        return out


# ------------------------------------------------------------------------------- compiling


def _compiled(module: nn.Module) -> Callable[[torch.Tensor], Taps]:
    """``torch.compile(module)``, with compilation failures turned into one clear error.

    Compilation happens at the first call of each input shape and mode; a machine without a
    working compiler toolchain fails there, not here.
    """
    try:
        net = torch.compile(module)
    except RuntimeError as exc:  # e.g. a Python version that Dynamo does not support
        raise UsageError(f"compile=true: torch.compile is not available here ({exc}); "
                         "run with compile=false") from exc

    def call(x: torch.Tensor) -> Taps:
        from torch._dynamo.exc import TorchDynamoException

        try:
            return net(x)
        except TorchDynamoException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UsageError(f"compile=true: torch.compile failed on this machine "
                             f"({type(exc).__name__}: {first}); run with compile=false"
                             ) from exc

    return call


# ------------------------------------------------------------------------------------ method


class MKD(Method):
    """Multiresolution knowledge distillation (see the module docstring)."""

    Config = MKDConfig
    config: MKDConfig
    localizes = True
    presets = PRESETS

    def __init__(self, config: MKDConfig) -> None:
        super().__init__(config)
        self.losses_: list[float] = []
        self.cache_info_: dict[str, Any] = {}
        self._eval_cache: tuple[TaskData, ExpertCache] | None = None

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        assert isinstance(config, MKDConfig)
        require_weights(config.expert, config.expert_weights, "expert_weights")

    def provenance(self) -> dict[str, Any]:
        expert = getattr(self, "expert_", None)
        return {"expert": expert.identity if expert is not None else None,
                "checkpoint_policy": "final"}

    # ----------------------------------------------------------------------------- plumbing

    def _build(self, ctx: RunContext) -> None:
        cfg = self.config
        self.device_ = ctx.device
        self.expert_ = FeatureExtractor(cfg.expert, cfg.expert_weights, cfg.trained_layers,
                                        seed=ctx.seed).to(ctx.device)
        self.cloner_ = Cloner(cfg.trained_layers, cfg.cloner,
                              generator=ctx.generator(1)).to(ctx.device)
        self.normalize_: nn.Module = Normalize() if cfg.normalize == "imagenet" else nn.Identity()
        self.normalize_.to(ctx.device)
        if self._channels_last:
            self.expert_.to(memory_format=torch.channels_last)
            self.cloner_.to(memory_format=torch.channels_last)
        self._expert_net: Callable[[torch.Tensor], Taps] = self.expert_
        self._cloner_net: Callable[[torch.Tensor], Taps] = self.cloner_
        if cfg.compile:
            self._expert_net = _compiled(self.expert_)
            self._cloner_net = _compiled(self.cloner_)

    @property
    def _cuda(self) -> bool:
        return bool(self.device_.type == "cuda")

    @property
    def _channels_last(self) -> bool:
        return self.config.channels_last and self._cuda

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.amp and self._cuda:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _floats(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×C×H×W -> float in [0, 1] on the device, three channels (as ToTensor)."""
        x = images.to(self.device_, non_blocking=True).float().div_(255)
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x

    def _net_input(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize_(x)
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def _expert(self, x: torch.Tensor) -> Taps:
        with torch.no_grad(), self._autocast():
            return self._expert_net(x)

    def _targets(self, x: torch.Tensor, idx: torch.Tensor, cache: ExpertCache | None) -> Taps:
        """The expert's taps of batch ``x`` (images ``idx`` of the cached set)."""
        if cache is None:
            return self._expert(x)

        def compute(miss: torch.Tensor) -> Taps:
            return self._expert(x[miss.to(x.device)])

        return cache.lookup(idx, compute)

    def _activation_dtype(self) -> torch.dtype:
        return torch.bfloat16 if (self.config.amp and self._cuda) else torch.float32

    def _make_cache(self, images: torch.Tensor, layers: tuple[str, ...],
                    budget: int) -> ExpertCache | None:
        """Cache the expert's ``layers`` for as many of ``images`` as ``budget`` bytes allow."""
        cfg = self.config
        n = len(images)
        size = (int(images.shape[2]), int(images.shape[3]))
        per_image = tap_bytes(layers, size, self._activation_dtype())
        if cfg.expert_cache == "off" or cfg.augment != "none":
            n_cached = 0
        elif cfg.expert_cache == "on":
            n_cached = n
        else:
            n_cached = min(n, max(0, budget) // max(1, per_image))
        if n_cached == 0:
            return None
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, n_cached, cfg.batch_size):
            x = self._net_input(self._floats(images[start:min(n_cached, start + cfg.batch_size)]))
            taps = self._expert(x)
            for k in layers:
                parts.setdefault(k, []).append(taps[k])
        return ExpertCache({k: torch.cat(v) for k, v in parts.items()}, n_cached)

    def _budget_bytes(self) -> int:
        mb = self.config.cache_budget_mb
        return (default_budget_mb(self.device_) if mb is None else mb) * 2**20

    # ---------------------------------------------------------------------------- training

    def fit(self, train: TaskData, ctx: RunContext) -> MKD:
        cfg = self.config
        self._build(ctx)
        self.history_ = []
        self.losses_ = []
        self.eval_info_: list[dict[str, float]] = []
        self._eval_cache = None
        images = train.images.to(self.device_)
        n = len(images)
        t0 = time.perf_counter()
        budget = self._budget_bytes()
        cache = self._make_cache(images, cfg.trained_layers, budget)
        self._budget_left = budget - (cache.nbytes if cache is not None else 0)
        if self._cuda:
            torch.cuda.synchronize(self.device_)  # an honest fill time
        self.cache_info_ = {"train_images": n, "cached": cache.n if cache else 0,
                            "cache_mb": (cache.nbytes if cache else 0) / 2**20,
                            "fill_s": time.perf_counter() - t0}
        log.info("MKD expert cache: %(cached)d of %(train_images)d training images, "
                 "%(cache_mb).1f MiB, filled in %(fill_s).2f s", self.cache_info_)
        optimizer = torch.optim.Adam(self.cloner_.parameters(), lr=cfg.lr)
        order = ctx.generator(2)
        augment = ctx.generator(3)
        layers = cfg.trained_layers
        for epoch in range(cfg.epochs):
            self.cloner_.train()
            epoch_loss = torch.zeros((), device=self.device_)
            for idx in torch.randperm(n, generator=order).split(cfg.batch_size):
                x = self._floats(images[idx.to(images.device)])
                if cfg.augment == "headct":
                    x = headct_affine(x, augment)
                x = self._net_input(x)
                targets = self._targets(x, idx, cache)
                with self._autocast():
                    preds = self._cloner_net(x)
                loss = training_loss(preds, targets, layers, cfg.lamda, cfg.loss_terms)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_loss += loss.detach()
            self.losses_.append(float(epoch_loss))
            if cfg.eval_every and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1):
                self._evaluate(epoch, ctx)
            ctx.report(epoch + 1, cfg.epochs)
        self.cloner_.eval()
        return self

    def _evaluate(self, epoch: int, ctx: RunContext) -> None:
        """Test-set metrics during training, as the official code logs every 10 epochs."""
        if ctx.eval_data is None or ctx.evaluate is None:
            return
        data = ctx.eval_data
        t0 = time.perf_counter()
        if self._eval_cache is None or self._eval_cache[0] is not data:
            cache = self._make_cache(data.images, self.config.scored_layers, self._budget_left)
            self._eval_cache = (data, cache) if cache is not None else None
        cache = self._eval_cache[1] if self._eval_cache is not None else None
        scores = self._image_scores(data, cache)
        if self._cuda:
            torch.cuda.synchronize(self.device_)
        self.eval_info_.append({"epoch": epoch, "images": len(data),
                                "cached": cache.n if cache is not None else 0,
                                "seconds": time.perf_counter() - t0})
        metrics = ctx.evaluate(data, Scores(image=scores))
        self.history_.append({"epoch": epoch, **metrics})
        self.cloner_.train()

    # ----------------------------------------------------------------------------- scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "cloner_"):
            raise RuntimeError("MKD.score called before fit")

    def _batches(self, data: TaskData) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in torch.arange(len(data)).split(self.config.batch_size):
            yield idx, self._net_input(self._floats(data.images[idx]))

    def _image_scores(self, data: TaskData, cache: ExpertCache | None = None) -> np.ndarray:
        cfg = self.config
        self.cloner_.eval()
        out = []
        with torch.no_grad():
            for idx, x in self._batches(data):
                targets = self._targets(x, idx, cache)
                with self._autocast():
                    preds = self._cloner_net(x)
                out.append(image_scores(preds, targets, cfg.scored_layers, cfg.lamda,
                                        cfg.loss_terms).cpu())
        return torch.cat(out).double().numpy()

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        self._check_fitted()
        cfg = self.config
        cache = None
        if self._eval_cache is not None and self._eval_cache[0] is test:
            cache = self._eval_cache[1]
        self._eval_cache = None  # scoring is the last use: free the memory afterwards
        if cfg.localization == "none" or not test.has_masks:
            return Scores(image=self._image_scores(test, cache))
        image, raw, code = self.localize(test, ctx)
        if cfg.localization == "smoothgrad":  # its scores were taken on noisy copies
            image = self._image_scores(test, cache)
        return Scores(image=image, maps=raw, extra_maps={"mkd_code": code})

    # ------------------------------------------------------------------------ localization

    def _input_gradients(self, x: torch.Tensor, eager: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """∂score_i/∂x_i for every image of the batch, and the scores.

        ``eager`` bypasses ``torch.compile`` (guided backprop swaps the cloner's ReLUs).
        """
        cfg = self.config
        x = x.detach().requires_grad_(True)
        expert = self.expert_ if eager else self._expert_net
        cloner = self.cloner_ if eager else self._cloner_net
        with torch.enable_grad():
            with self._autocast():
                targets = expert(x)
                preds = cloner(x)
            s = image_scores(preds, targets, cfg.scored_layers, cfg.lamda, cfg.loss_terms)
            (grad,) = torch.autograd.grad(s.sum(), x)
        return grad.float(), s.detach()

    def _noise_std(self, x: torch.Tensor) -> torch.Tensor:
        span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).float()
        level = self.config.noise_level
        if self.config.smoothgrad_noise_mode == "standard":
            std = level * span
        else:  # the official code: σ = level / range, passed as σ² to normal_(mean, std)
            std = torch.where(span > 0, (level / span.clamp(min=1e-12)) ** 2,
                              torch.zeros_like(span))
        return std.view(-1, 1, 1, 1)

    def _localize_batch(self, x: torch.Tensor, noise: torch.Generator
                        ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        cfg = self.config
        if cfg.localization == "smoothgrad":
            std = self._noise_std(x)
            raw_sum: np.ndarray | None = None
            code_sum: np.ndarray | None = None
            for _ in range(cfg.smoothgrad_samples):
                eps = torch.randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)
                grad, scores = self._input_gradients(x + eps * std.to(x.dtype))
                g = grad.cpu().numpy()
                raw_k = np.abs(g).sum(axis=1, dtype=np.float32)
                code_k = grayscale_p99(g)
                raw_sum = raw_k if raw_sum is None else raw_sum + raw_k
                code_sum = code_k if code_sum is None else code_sum + code_k
            assert raw_sum is not None and code_sum is not None
            k = np.float32(cfg.smoothgrad_samples)
            return scores, raw_sum / k, minmax(np.abs(code_sum / k))
        if cfg.localization == "gbp":
            with guided_relus(self.cloner_):
                grad, scores = self._input_gradients(x, eager=True)
            g = grad.cpu().numpy()
            return scores, np.abs(g).sum(axis=1, dtype=np.float32), minmax(grayscale_p99(g))
        grad, scores = self._input_gradients(x)
        g = grad.cpu().numpy()
        return scores, np.abs(g).sum(axis=1, dtype=np.float32), grayscale_p99(g)

    def localize(self, data: TaskData, ctx: RunContext
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image scores, raw maps and the official code's maps of every image, batched."""
        self._check_fitted()
        cfg = self.config
        if cfg.localization == "none":
            raise UsageError("localization is 'none'")
        self.cloner_.eval()
        noise = torch.Generator(device=self.device_).manual_seed(
            int(ctx.seed) * 1_000_003 + 4)
        scores, raws, codes = [], [], []
        for _, x in self._batches(data):
            s, raw, code = self._localize_batch(x, noise)
            scores.append(s.cpu())
            raws.append(raw)
            codes.append(code)
        raw_maps = gaussian(np.concatenate(raws), cfg.gaussian_sigma)
        if cfg.opening:
            raw_maps = opening(raw_maps)
        code_maps = gaussian(np.concatenate(codes), cfg.gaussian_sigma)
        return torch.cat(scores).double().numpy(), raw_maps, code_maps

    def localize_official_loop(self, data: TaskData) -> tuple[np.ndarray, np.ndarray]:
        """The official code's procedure, one image at a time: the reference for benchmarks.

        A detection pass over every image (``detection_test``), then per image (``grad_calc``):
        forward through expert and cloner, ``backward`` of the score with every parameter's
        gradient computed too (the official code leaves ``requires_grad`` on for both networks),
        the input's gradient to ``numpy``, ``convert_to_grayscale`` and the Gaussian. Returns the
        image scores and the ``mkd_code`` maps; ``gradients`` localization only. Same numbers as
        :meth:`localize` (tested), many times the work.
        """
        self._check_fitted()
        cfg = self.config
        if cfg.localization != "gradients":
            raise UsageError("the official per-image loop is written for localization=gradients")
        scores = self._image_scores(data)
        self.cloner_.eval()
        params = [*self.expert_.parameters(), *self.cloner_.parameters()]
        flags = [p.requires_grad for p in params]
        maps = []
        try:
            for p in params:
                p.requires_grad_(True)
            for i in range(len(data)):
                x = self._net_input(self._floats(data.images[i:i + 1])).detach()
                x.requires_grad_(True)
                with torch.enable_grad(), self._autocast():
                    s = image_scores(self.cloner_(x), self.expert_(x), cfg.scored_layers,
                                     cfg.lamda, cfg.loss_terms)
                for p in params:
                    p.grad = None
                s.sum().backward()
                assert x.grad is not None
                g = x.grad.float().cpu().numpy()
                maps.append(gaussian(grayscale_p99(g), cfg.gaussian_sigma)[0])
        finally:
            for p, flag in zip(params, flags, strict=True):
                p.requires_grad_(flag)
                p.grad = None
        return scores, np.stack(maps)
