"""The MKD detector: training, scoring and localization as the official code does them.

See :mod:`bench.methods.mkd` for what is computed; the networks, loss and score are in
:mod:`~bench.methods.mkd.nets`, the expert cache in :mod:`~bench.methods.mkd.cache`, the map
post-processing in :mod:`~bench.methods.mkd.localize`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bench.core.errors import UsageError
from bench.datasets.augment import headct_affine
from bench.datasets.base import TaskData
from bench.methods.backbones import FeatureExtractor, Normalize, require_weights
from bench.methods.base import Method, MethodConfig, PerfProfile, RunContext, Scores
from bench.methods.mkd.cache import ExpertCache, Taps, default_budget_mb, tap_bytes
from bench.methods.mkd.config import PRESETS, MKDConfig
from bench.methods.mkd.localize import (
    CODE_MAPS,
    channel_sum,
    finish_maps,
    gaussian,
    grayscale_p99,
    minmax,
    smoothgrad_std,
)
from bench.methods.mkd.nets import (
    EXPERT_TAPS,
    Cloner,
    CriticalTaps,
    guided_relus,
    image_scores,
    training_loss,
)

log = logging.getLogger(__name__)

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
        # imported only when compile=true: loading TorchDynamo costs seconds of start-up
        from torch._dynamo.exc import TorchDynamoException

        try:
            return net(x)
        except TorchDynamoException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UsageError(f"compile=true: torch.compile failed on this machine "
                             f"({type(exc).__name__}: {first}); run with compile=false"
                             ) from exc

    return call


#: ``cache_dtype`` -> the dtype the expert's activations are rounded to (None: as returned)
_CACHE_DTYPES: dict[str, torch.dtype | None] = {"exact": None, "bfloat16": torch.bfloat16}

# ------------------------------------------------------------------------------------ method


class MKD(Method):
    """Multiresolution knowledge distillation (see the module docstring)."""

    Config = MKDConfig
    config: MKDConfig
    localizes = True
    presets = PRESETS
    #: the official code's maps feed the official code's localization metric
    extra_map_protocols: ClassVar[Mapping[str, str]] = {CODE_MAPS: "pixel_auroc_mkd"}
    #: training timed with the expert cache off and on; the speed switches; a random expert;
    #: the official per-image localization as the reference of the batched one
    perf_profile = PerfProfile(
        train_variants={"train_cache_off": {"expert_cache": "off"},
                        "train_cache_on": {"expert_cache": "on"}},
        speedups={"train_speedup_cache": ("train_cache_on", "train_cache_off")},
        flags=frozenset({"amp", "channels_last", "compile"}),
        offline={"expert_weights": "random", "crop": None},
        reference_loop="localize_official_loop")

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
        return {"expert": getattr(expert, "identity", None) if expert is not None else None,
                "checkpoint_policy": "final"}

    def fit_info(self) -> dict[str, float]:
        """The expert cache of the last fit: images cached, MiB, seconds to fill."""
        info = self.cache_info_
        if not info:
            return {}
        return {"cached_images": float(info["cached"]), "cache_mb": float(info["cache_mb"]),
                "cache_fill_s": float(info["fill_s"])}

    # ----------------------------------------------------------------------------- plumbing

    def _build(self, ctx: RunContext) -> None:
        cfg = self.config
        if cfg.amp and ctx.device.type not in ("cpu", "cuda"):  # recorded true: it must act
            raise UsageError(f"amp=true: bf16 autocast is implemented for the CPU and CUDA, "
                             f"not {ctx.device.type}; run with amp=false")
        self.device_ = ctx.device
        names = EXPERT_TAPS[cfg.expert]
        expert = FeatureExtractor(cfg.expert, cfg.expert_weights,
                                  tuple(names[layer] for layer in cfg.trained_layers),
                                  seed=ctx.seed)
        # VGG-16's taps already carry the critical layers' names (the paper's path, unchanged)
        self.expert_: nn.Module = expert if cfg.expert == "vgg16" else CriticalTaps(
            expert, {layer: names[layer] for layer in cfg.trained_layers})
        self.expert_.to(ctx.device)
        self.cloner_ = Cloner(cfg.trained_layers, cfg.cloner, generator=ctx.generator(1),
                              expert=cfg.expert).to(ctx.device)
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
        return self.config.channels_last

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast with ``amp`` (CUDA and the CPU alike), nothing otherwise."""
        if self.config.amp:
            return torch.autocast(device_type=self.device_.type, dtype=torch.bfloat16)
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
            return self._rounded(self._expert_net(x))

    def _rounded(self, taps: Taps) -> Taps:
        """The expert's activations in ``cache_dtype`` (unchanged with ``exact``).

        Taps that require gradients (localization) keep the expert's gradient: only their values
        are rounded (``t + (round(t) − t).detach()``, in the tap's own dtype).
        """
        dtype = _CACHE_DTYPES[self.config.cache_dtype]
        if dtype is None:
            return taps
        out = {}
        for k, t in taps.items():
            r = t.to(dtype)
            out[k] = t + (r.to(t.dtype) - t).detach() if t.requires_grad else r
        return out

    def _targets(self, x: torch.Tensor, idx: torch.Tensor, cache: ExpertCache | None) -> Taps:
        """The expert's taps of batch ``x`` (images ``idx`` of the cached set)."""
        if cache is None:
            return self._expert(x)

        def compute(miss: torch.Tensor) -> Taps:
            return self._expert(x[miss.to(x.device)])

        return cache.lookup(idx, compute)

    def _activation_dtype(self) -> torch.dtype:
        """The dtype of the expert's activations as cached."""
        dtype = _CACHE_DTYPES[self.config.cache_dtype]
        if dtype is not None:
            return dtype
        return torch.bfloat16 if self.config.amp else torch.float32

    def _make_cache(self, images: torch.Tensor, layers: tuple[str, ...],
                    budget: int) -> ExpertCache | None:
        """Cache the expert's ``layers`` for as many of ``images`` as ``budget`` bytes allow."""
        cfg = self.config
        n = len(images)
        size = (int(images.shape[2]), int(images.shape[3]))
        per_image = tap_bytes(layers, size, self._activation_dtype(), self.config.expert)
        if cfg.expert_cache == "off" or cfg.augment != "none":
            n_cached = 0
        elif cfg.expert_cache == "on":
            n_cached = n
        else:
            n_cached = min(n, max(0, budget) // max(1, per_image))
        if n_cached == 0:
            return None
        # written in place batch by batch: one copy of the activations, not the batches and
        # then their concatenation (which held twice the cache's bytes while it filled)
        store: dict[str, torch.Tensor] = {}
        for start in range(0, n_cached, cfg.batch_size):
            x = self._net_input(self._floats(images[start:min(n_cached, start + cfg.batch_size)]))
            taps = self._expert(x)
            for k in layers:
                t = taps[k]
                if k not in store:
                    fmt = (torch.channels_last if t.dim() == 4 and not t.is_contiguous()
                           and t.is_contiguous(memory_format=torch.channels_last)
                           else torch.contiguous_format)
                    store[k] = torch.empty((n_cached, *t.shape[1:]), dtype=t.dtype,
                                           device=t.device, memory_format=fmt)
                store[k][start:start + len(t)] = t
            del taps
        return ExpertCache(store, n_cached)

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
        if cfg.expert != "vgg16" and any(int(s) % 32 for s in images.shape[2:]):
            # its strided convs round up where the cloner's max-pools round down
            raise UsageError(f"expert={cfg.expert} needs an input size that is a multiple of 32 "
                             f"(got {tuple(images.shape[2:])}); set image_size (e.g. 32 or 64)")
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
        """Test-set metrics during training, as the official code logs every 10 epochs: image
        metrics, and with ``eval_localization`` the pixel metrics the harness computes during
        training (model-resolution and the MKD-code protocol; not the native-resolution ones)."""
        if ctx.eval_data is None or ctx.evaluate is None:
            return
        data = ctx.eval_data
        t0 = time.perf_counter()
        if self._eval_cache is None or self._eval_cache[0] is not data:
            cache = self._make_cache(data.images, self.config.scored_layers, self._budget_left)
            self._eval_cache = (data, cache) if cache is not None else None
        cache = self._eval_cache[1] if self._eval_cache is not None else None
        scores = Scores(image=self._image_scores(data, cache))
        cfg = self.config
        if cfg.eval_localization and cfg.localization != "none" and data.has_masks:
            # pixel metrics at every evaluation too (the paper averages its Table 4 over them);
            # image scores stay those of the detection pass above
            _, raw, code = self.localize(data, ctx)
            scores = Scores(image=scores.image, maps=raw, extra_maps={CODE_MAPS: code})
        if self._cuda:
            torch.cuda.synchronize(self.device_)
        self.eval_info_.append({"epoch": epoch, "images": len(data),
                                "cached": cache.n if cache is not None else 0,
                                "seconds": time.perf_counter() - t0})
        metrics = ctx.evaluate(data, scores)
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
        return Scores(image=image, maps=raw, extra_maps={CODE_MAPS: code})

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
                targets = self._rounded(expert(x))
                preds = cloner(x)
            s = image_scores(preds, targets, cfg.scored_layers, cfg.lamda, cfg.loss_terms)
            (grad,) = torch.autograd.grad(s.sum(), x)
        return grad.float(), s.detach()

    def _localize_batch(self, x: torch.Tensor, noise: torch.Generator
                        ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        cfg = self.config
        if cfg.localization == "smoothgrad":
            std = smoothgrad_std(x, cfg.noise_level, cfg.smoothgrad_noise_mode)
            raw_sum: np.ndarray | None = None
            code_sum: np.ndarray | None = None
            for _ in range(cfg.smoothgrad_samples):
                eps = torch.randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)
                grad, scores = self._input_gradients(x + eps * std.to(x.dtype))
                g = grad.cpu().numpy()
                raw_k = channel_sum(g)
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
            return scores, channel_sum(g), minmax(grayscale_p99(g))
        grad, scores = self._input_gradients(x)
        g = grad.cpu().numpy()
        return scores, channel_sum(g), grayscale_p99(g)

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
        raw_maps, code_maps = finish_maps(np.concatenate(raws), np.concatenate(codes),
                                          cfg.gaussian_sigma, cfg.opening)
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
                    s = image_scores(self.cloner_(x), self._rounded(self.expert_(x)),
                                     cfg.scored_layers, cfg.lamda, cfg.loss_terms)
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
