"""What every ``anomalib.*`` method shares: the anomalib check, the backbone weights, the input
normalization, and the fit/score loops around anomalib's torch models.

Backbone weights follow bench's rule (``bench.methods.backbones``): ``backbone_weights`` is
``imagenet`` (torchvision's ImageNet weights, from the torch hub cache; one line when they are
neither there nor downloadable), the path of a state dict, or ``random`` (asked for, never by
default). anomalib's models are always built with ``pre_trained=False`` (no timm download), then
the chosen weights are loaded into their timm backbone: timm's ResNets use torchvision's
parameter names, so a torchvision state dict fits. ``random`` loads the seeded torchvision
initialization that bench's own methods use: at the same seed, ``anomalib.Padim`` and ``padim``
see the same random ResNet-18, and their numbers differ by method code only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.config import PositiveInt
from bench.core.errors import MissingDependency, UsageError
from bench.datasets.base import TaskData
from bench.methods._pretrained import EMBEDDED_FAMILIES
from bench.methods.backbones import WEIGHTS, Normalize, WeightsError, build_trunk, require_weights
from bench.methods.base import ANY_FAMILY, Method, MethodConfig, RunContext, Scores
from bench_anomalib import ANOMALIB_RANGE

#: what to run when anomalib is missing, in every message that says so
INSTALL = ("pip install -e '.[anomalib]' in a checkout of bench (or pip install "
           f"'anomalib{','.join(ANOMALIB_RANGE)}')")

#: the backbones whose timm and torchvision parameter names agree (weights load either way)
Backbone = Literal["resnet18", "resnet50", "wide_resnet50_2"]


def anomalib_version() -> str:
    """The installed anomalib's version; :class:`MissingDependency` (one line) when it is not
    installed or outside the supported range."""
    if importlib.util.find_spec("anomalib") is None:
        raise MissingDependency(f"needs anomalib, which is not installed; install the extra: "
                                f"{INSTALL}")
    version = metadata.version("anomalib")
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if major_minor[:2] != (2, 7):
        raise MissingDependency(f"needs anomalib {','.join(ANOMALIB_RANGE)}, found {version}; "
                                f"install the extra: {INSTALL}")
    return version


@dataclass(frozen=True, kw_only=True)
class AnomalibConfig(MethodConfig):
    """Fields of every ``anomalib.*`` method: the batch size (of training and scoring,
    anomalib's datamodules' default 32). A subclass's other fields are the anomalib model's
    constructor arguments, under anomalib's names and with its defaults, and its training
    recipe."""

    batch_size: PositiveInt = 32


@dataclass(frozen=True, kw_only=True)
class PretrainedConfig(AnomalibConfig):
    """A model on a pretrained backbone: ``backbone_weights`` replaces anomalib's
    ``pre_trained`` (``imagenet``, a state dict file, or ``random``)."""

    backbone_weights: Annotated[str | None, WEIGHTS] = "imagenet"


class AnomalibMethod(Method):
    """Base of the ``anomalib.*`` methods. A subclass says how to build anomalib's torch model
    (:meth:`build_model`), which of its modules hold the backbone (:meth:`backbones`), and how
    to train it (:meth:`train_model`); fitting, scoring, weights and provenance are here."""

    Config: ClassVar[type[MethodConfig]] = AnomalibConfig
    config: AnomalibConfig
    localizes = True
    #: anomalib's default input size 256 px on real datasets, the demo data's own sizes
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        ANY_FAMILY: {"image_size": 256},
        **{family: {"image_size": None} for family in EMBEDDED_FAMILIES}}
    #: ImageNet mean/std normalization of the inputs, as anomalib's pre-processor does
    normalize_inputs: ClassVar[bool] = True
    #: anomalib builds this model's backbone with pretrained weights whatever it is told (a
    #: download): built here with timm's pretrained loading off, the weights loaded after
    forces_pretrained: ClassVar[bool] = False
    #: the fewest training images the model can fit (fewer are repeated up to it)
    min_train_images: ClassVar[int] = 1

    # ---------------------------------------------------------------- subclass hooks
    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        """anomalib's torch model for this config (``pre_trained=False``)."""
        raise NotImplementedError

    def backbones(self, model: nn.Module) -> list[nn.Module]:
        """The model's timm backbone module(s) that receive ``backbone_weights``."""
        raise NotImplementedError

    def train_model(self, model: nn.Module, train: TaskData, ctx: RunContext) -> None:
        """Train (or fill) the model on the training images; the model is in train mode."""
        raise NotImplementedError

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        anomalib_version()  # installed after the registry loaded it: still checked here
        if isinstance(config, PretrainedConfig):
            require_weights(getattr(config, "backbone", "backbone"), config.backbone_weights,
                            "backbone_weights")

    # ---------------------------------------------------------------- inputs
    def inputs(self, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """Images in [0, 1] as the model takes them: 3 channels, normalized, on the device."""
        x = x.to(ctx.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.norm_(x) if self.normalize_inputs else x

    def shuffled(self, data: TaskData, ctx: RunContext, epoch: int) -> Iterator[torch.Tensor]:
        """One epoch of training batches in a seeded random order (anomalib's train loader
        shuffles), inputs ready for the model."""
        order = torch.randperm(len(data), generator=ctx.generator(offset=10_000 + epoch))
        bs = self.config.batch_size
        for start in range(0, len(data), bs):
            yield self.inputs(data.batch(order[start:start + bs]), ctx)

    # ---------------------------------------------------------------- fit / score
    def fit(self, train: TaskData, ctx: RunContext) -> AnomalibMethod:
        self.version_ = anomalib_version()
        self.norm_ = Normalize().to(ctx.device)
        # anomalib's imports warn (deprecations) and its code shows progress bars (coreset
        # selection): a method never prints
        with seeded(ctx.seed), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            with no_timm_pretrained() if self.forces_pretrained else contextlib.nullcontext():
                model = self.build_model(train.size)
            self.expert_ = self.load_backbone(model, ctx.seed)
            model.to(ctx.device).train()
            if len(train) < self.min_train_images:
                # one training image (few-shot, k=1) for a model that needs two (a sample
                # covariance, batch statistics): the image twice, so the covariance is the
                # model's regularizer alone and the batch statistics are the image's own
                train = train.subset([i % len(train) for i in range(self.min_train_images)])
            self.train_model(model, train, ctx)
        model.eval()
        self.model_ = model
        return self

    def load_backbone(self, model: nn.Module, seed: int) -> str | None:
        """Load ``backbone_weights`` into the model's backbone(s); returns their identity (None:
        the model has no pretrained backbone, it starts from anomalib's seeded initialization)."""
        if not isinstance(self.config, PretrainedConfig):
            return None
        name = str(getattr(self.config, "backbone", "resnet18"))
        trunk, identity = build_trunk(name, self.config.backbone_weights, seed,
                                      field="backbone_weights")
        state = trunk.state_dict()
        for module in self.backbones(model):
            own = module.state_dict()
            lacking = [k for k in own if k not in state]
            if lacking:
                raise WeightsError(f"{identity} does not fit anomalib's {name} backbone: no "
                                   f"{', '.join(lacking[:3])}")
            try:
                module.load_state_dict({k: state[k] for k in own}, strict=True)
            except RuntimeError as exc:
                raise WeightsError(f"{identity} does not fit anomalib's {name} backbone: "
                                   f"{str(exc).splitlines()[-1].strip()[:200]}") from None
        return identity

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        images, maps = [], []
        with torch.no_grad():
            for x in test.batches(self.config.batch_size):
                out = self.model_(self.inputs(x, ctx))
                images.append(out.pred_score.reshape(len(x)).float().cpu())
                if out.anomaly_map is not None:
                    m = out.anomaly_map.reshape(len(x), *out.anomaly_map.shape[-2:]).float()
                    if tuple(m.shape[-2:]) != tuple(test.size):
                        m = F.interpolate(m[:, None], size=test.size, mode="bilinear",
                                          align_corners=False)[:, 0]
                    maps.append(m.cpu())
        return Scores(image=torch.cat(images).numpy().astype(np.float64),
                      maps=torch.cat(maps).numpy() if maps and self.localizes else None)

    def provenance(self) -> dict[str, Any]:
        version = getattr(self, "version_", None)
        return {"expert": getattr(self, "expert_", None), "checkpoint_policy": "final",
                "versions": {"anomalib": version} if version else {}}


def epochs_loop(method: AnomalibMethod, model: nn.Module, train: TaskData, ctx: RunContext,
                epochs: int, optimizer: torch.optim.Optimizer,
                loss_fn: Any, scheduler: Any = None) -> None:
    """anomalib's automatic optimization: per batch, ``loss_fn(model, x)``, backward, step; the
    scheduler steps once per epoch (Lightning's default interval)."""
    for epoch in range(epochs):
        for x in method.shuffled(train, ctx, epoch):
            optimizer.zero_grad()
            loss = loss_fn(model, x)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        ctx.report(epoch + 1, epochs)


def fill_memory(method: AnomalibMethod, model: nn.Module, train: TaskData,
                ctx: RunContext) -> None:
    """One pass of the training images through a memory-bank model in train mode (anomalib's
    single epoch of ``training_step``s), in order."""
    with torch.no_grad():
        for x in train.batches(method.config.batch_size):
            model(method.inputs(x, ctx))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """anomalib's code draws from torch's global generator (random channel choice, coreset
    start, shuffled fibers, Perlin noise): inside, it is seeded from the job, and afterwards it
    is as it was (CUDA's generators too)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed) * 1_000_003 + 7)
        yield


@contextlib.contextmanager
def no_timm_pretrained() -> Iterator[None]:
    """timm's ``create_model`` with ``pretrained=False`` whatever the caller asks, for the time
    a model whose anomalib code hard-codes pretrained weights is built (STFPM's teacher): the
    weights given are loaded right after, and nothing is downloaded."""
    import timm

    create = timm.create_model

    def offline(*args: Any, **kwargs: Any) -> Any:
        kwargs["pretrained"] = False
        return create(*args, **kwargs)

    timm.create_model = offline
    try:
        yield
    finally:
        timm.create_model = create


def need(what: str, field: str, value: object, how: str) -> None:
    """One line naming what to provide when a model's own download is not given explicitly."""
    if value is None or str(value).strip() == "":
        raise UsageError(f"{what} is not available offline: --set {field}=PATH ({how})")
