"""The ``anomalib.<Model>`` methods: one class per anomalib model, named as anomalib names it.

Importing this module needs no anomalib until a method fits, but it raises
:class:`~bench.core.errors.MissingDependency` when anomalib is not installed, so that bench's
registry leaves the names out quietly (the entry points of ``pyproject.toml`` point here).

Config fields are the anomalib model's constructor arguments (anomalib's names and defaults;
``pre_trained`` is ``backbone_weights``) plus its training recipe (epochs, optimizer settings as
anomalib's Lightning module sets them; epochs from anomalib's model configs and the papers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.config import Fraction, PositiveFloat, PositiveInt, Range, require
from bench.datasets.base import TaskData
from bench.methods.backbones import WEIGHTS, WeightsError, check_state_file
from bench.methods.base import ANY_FAMILY, MethodConfig, RunContext, Scores
from bench_anomalib.base import (
    AnomalibConfig,
    AnomalibMethod,
    Backbone,
    PretrainedConfig,
    anomalib_version,
    epochs_loop,
    fill_memory,
    need,
)

anomalib_version()  # not installed: MissingDependency, and the registry leaves these names out

ResNetLayer = Literal["layer1", "layer2", "layer3", "layer4"]


def _trained_presets(epochs_on_demo: int,
                     size_on_demo: int | None = None) -> dict[str, dict[str, Any]]:
    """anomalib's 256 px on real datasets; on the demo data a few epochs, at its own size
    unless the model takes no smaller inputs (``size_on_demo``)."""
    return {ANY_FAMILY: {"image_size": 256},
            **{f: {"image_size": size_on_demo, "epochs": epochs_on_demo}
               for f in ("digits", "textures")}}


# ----------------------------------------------------------------------------- PatchCore
@dataclass(frozen=True, kw_only=True)
class PatchcoreConfig(PretrainedConfig):
    backbone: Backbone = "wide_resnet50_2"
    layers: tuple[ResNetLayer, ...] = ("layer2", "layer3")
    coreset_sampling_ratio: Fraction = 0.1
    num_neighbors: PositiveInt = 9

class Patchcore(AnomalibMethod):
    """anomalib's PatchCore (Roth et al. 2022): coreset memory bank, nearest-neighbour scores."""

    Config = PatchcoreConfig
    config: PatchcoreConfig

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

        c = self.config
        return PatchcoreModel(layers=list(c.layers), backbone=c.backbone, pre_trained=False,
                              num_neighbors=c.num_neighbors)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.feature_extractor.feature_extractor]

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        fill_memory(self, model, train, ctx)
        # few training images (the few-shot setting): keep at least one embedding
        n = sum(len(e) for e in model.embedding_store)
        model.subsample_embedding(max(self.config.coreset_sampling_ratio, 1 / max(1, n)))
        ctx.report(1, 1)


# --------------------------------------------------------------------------------- PaDiM
@dataclass(frozen=True, kw_only=True)
class PadimConfig(PretrainedConfig):
    backbone: Backbone = "resnet18"
    layers: tuple[ResNetLayer, ...] = ("layer1", "layer2", "layer3")
    #: channels kept at random (None: anomalib's per-backbone default, 100 for ResNet-18)
    n_features: Annotated[int | None, Range(ge=1)] = None

class Padim(AnomalibMethod):
    """anomalib's PaDiM (Defard et al. 2020): a Gaussian per patch position."""

    Config = PadimConfig
    config: PadimConfig
    min_train_images = 2  # a sample covariance / batch statistics

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.padim.torch_model import PadimModel

        c = self.config
        return PadimModel(backbone=c.backbone, layers=list(c.layers), pre_trained=False,
                          n_features=c.n_features)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.feature_extractor.feature_extractor]

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        fill_memory(self, model, train, ctx)
        model.fit()
        ctx.report(1, 1)


# ----------------------------------------------------------------------------------- DFM
@dataclass(frozen=True, kw_only=True)
class DfmConfig(PretrainedConfig):
    backbone: Backbone = "resnet50"
    layer: ResNetLayer = "layer3"
    pooling_kernel_size: PositiveInt = 4
    #: PCA: the fraction of variance kept
    pca_level: Fraction = 0.97
    #: ``fre`` (feature reconstruction error, with maps) or ``nll`` (image scores only)
    score_type: Literal["fre", "nll"] = "fre"

class Dfm(AnomalibMethod):
    """anomalib's DFM (Ahuja et al. 2019): PCA and a Gaussian on pooled deep features."""

    Config = DfmConfig
    config: DfmConfig
    #: its PCA keeps components of the training features' variance: one image (even twice)
    #: has none, so DFM needs two distinct images (few-shot k >= 2)
    min_shots = 2

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.dfm.torch_model import DFMModel

        c = self.config
        return DFMModel(backbone=c.backbone, layer=c.layer, pre_trained=False,
                        pooling_kernel_size=c.pooling_kernel_size, n_comps=c.pca_level,
                        score_type=c.score_type)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.feature_extractor.feature_extractor]

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        fill_memory(self, model, train, ctx)
        model.fit()
        ctx.report(1, 1)

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        scores = super().score(test, ctx)
        if self.config.score_type == "nll":
            scores.maps = None  # anomalib's nll gives image scores only
        return scores


# ------------------------------------------------------------------------------ FastFlow
@dataclass(frozen=True, kw_only=True)
class FastflowConfig(PretrainedConfig):
    backbone: Literal["resnet18", "wide_resnet50_2"] = "resnet18"
    flow_steps: PositiveInt = 8
    conv3x3_only: bool = False
    hidden_ratio: PositiveFloat = 1.0
    #: anomalib's Fastflow config: 500 epochs, Adam lr 1e-3, weight decay 1e-5
    epochs: PositiveInt = 500
    lr: PositiveFloat = 1e-3
    weight_decay: Annotated[float, Range(ge=0)] = 1e-5


class Fastflow(AnomalibMethod):
    """anomalib's FastFlow (Yu et al. 2021): 2D normalizing flows on backbone features."""

    Config = FastflowConfig
    config: FastflowConfig
    presets = _trained_presets(10)

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.fastflow.torch_model import FastflowModel

        c = self.config
        return FastflowModel(input_size=input_size, backbone=c.backbone, pre_trained=False,
                             flow_steps=c.flow_steps, conv3x3_only=c.conv3x3_only,
                             hidden_ratio=c.hidden_ratio)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.feature_extractor]

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        from anomalib.models.image.fastflow.loss import FastflowLoss

        c = self.config
        loss = FastflowLoss()
        opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        epochs_loop(self, model, train, ctx, c.epochs, opt, lambda m, x: loss(*m(x)))


# ------------------------------------------------------------------ Reverse Distillation
@dataclass(frozen=True, kw_only=True)
class ReverseDistillationConfig(PretrainedConfig):
    backbone: Backbone = "wide_resnet50_2"
    layers: tuple[ResNetLayer, ...] = ("layer1", "layer2", "layer3")
    anomaly_map_mode: Literal["add", "multiply"] = "add"
    #: anomalib (PR #1389, as the official code): 200 epochs, Adam lr 0.005, betas (0.5, 0.99)
    epochs: PositiveInt = 200
    lr: PositiveFloat = 0.005
    betas: tuple[Annotated[float, Range(ge=0, lt=1)], ...] = (0.5, 0.99)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.betas) == 2, f"betas={self.betas}: two numbers (Adam's beta1, beta2)")


class ReverseDistillation(AnomalibMethod):
    """anomalib's Reverse Distillation (Deng & Li 2022): a decoder student, one-class bottleneck."""

    Config = ReverseDistillationConfig
    config: ReverseDistillationConfig
    min_train_images = 2  # a sample covariance / batch statistics
    presets = _trained_presets(10)

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.reverse_distillation.anomaly_map import (
            AnomalyMapGenerationMode,
        )
        from anomalib.models.image.reverse_distillation.torch_model import (
            ReverseDistillationModel,
        )

        c = self.config
        return ReverseDistillationModel(
            backbone=c.backbone, input_size=input_size, layers=list(c.layers),
            anomaly_map_mode=AnomalyMapGenerationMode(c.anomaly_map_mode), pre_trained=False)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.encoder.feature_extractor]

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss

        c = self.config
        loss = ReverseDistillationLoss()
        params = [*model.decoder.parameters(), *model.bottleneck.parameters()]
        opt = torch.optim.Adam(params, lr=c.lr, betas=(c.betas[0], c.betas[1]))

        def step(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            # anomalib's loss views the features flat: some are not contiguous on the CPU
            encoder, decoder = m(x)
            return loss([f.contiguous() for f in encoder], [f.contiguous() for f in decoder])

        epochs_loop(self, model, train, ctx, c.epochs, opt, step)


# --------------------------------------------------------------------------------- CFlow
@dataclass(frozen=True, kw_only=True)
class CflowConfig(PretrainedConfig):
    backbone: Backbone = "wide_resnet50_2"
    layers: tuple[ResNetLayer, ...] = ("layer2", "layer3", "layer4")
    fiber_batch_size: PositiveInt = 64
    decoder: Literal["freia-cflow"] = "freia-cflow"
    condition_vector: PositiveInt = 128
    coupling_blocks: PositiveInt = 8
    clamp_alpha: PositiveFloat = 1.9
    permute_soft: bool = False
    lr: PositiveFloat = 1e-4
    #: anomalib's Cflow config: 50 epochs
    epochs: PositiveInt = 50

class Cflow(AnomalibMethod):
    """anomalib's CFlow-AD (Gudovskiy et al. 2022): conditional normalizing flows per layer."""

    Config = CflowConfig
    config: CflowConfig
    presets = _trained_presets(5)

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.cflow.torch_model import CflowModel

        c = self.config
        return CflowModel(backbone=c.backbone, layers=list(c.layers), pre_trained=False,
                          fiber_batch_size=c.fiber_batch_size, decoder=c.decoder,
                          condition_vector=c.condition_vector,
                          coupling_blocks=c.coupling_blocks, clamp_alpha=c.clamp_alpha,
                          permute_soft=c.permute_soft)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.encoder.feature_extractor]

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        """anomalib's manual optimization: per batch and layer, the positions (fibers) in a
        random order, one Adam step per ``fiber_batch_size`` of them (the last takes the rest);
        loss ``-logsigmoid(log p / C)`` with anomalib's ``get_logp``."""
        from anomalib.models.image.cflow.utils import get_logp, positional_encoding_2d

        c = self.config
        opt = torch.optim.Adam([p for d in model.decoders for p in d.parameters()], lr=c.lr)
        for epoch in range(c.epochs):
            for x in self.shuffled(train, ctx, epoch):
                feats = model.encoder(x)
                for i, layer in enumerate(model.pool_layers):
                    f = feats[layer].detach()
                    b, dim, h, w = f.shape
                    cond = positional_encoding_2d(c.condition_vector, h, w).to(x.device)
                    cond = cond.permute(1, 2, 0).reshape(1, h * w, -1).expand(b, -1, -1)
                    cond = cond.reshape(b * h * w, -1)
                    emb = f.permute(0, 2, 3, 1).reshape(b * h * w, dim)
                    # fewer positions than a fiber batch (few training images): one step on all
                    n_batches = max(1, len(emb) // c.fiber_batch_size)
                    perm = torch.randperm(len(emb), device=x.device)
                    for k in range(n_batches):
                        end = len(emb) if k == n_batches - 1 else (k + 1) * c.fiber_batch_size
                        idx = perm[k * c.fiber_batch_size:end]
                        opt.zero_grad()
                        z, log_jac = model.decoders[i](emb[idx], [cond[idx]])
                        loss = -F.logsigmoid(get_logp(dim, z, log_jac) / dim)
                        loss.mean().backward()
                        opt.step()
            ctx.report(epoch + 1, c.epochs)


# --------------------------------------------------------------------------------- STFPM
@dataclass(frozen=True, kw_only=True)
class StfpmConfig(PretrainedConfig):
    backbone: Backbone = "resnet18"
    layers: tuple[ResNetLayer, ...] = ("layer1", "layer2", "layer3")
    #: the teacher's weights: anomalib always downloads timm's; here they must be given
    backbone_weights: Annotated[str | None, WEIGHTS] = None
    #: anomalib's Stfpm: SGD lr 0.4, momentum 0.9, weight decay 1e-3; 100 epochs (the paper)
    epochs: PositiveInt = 100
    lr: PositiveFloat = 0.4
    momentum: Annotated[float, Range(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Range(ge=0)] = 1e-3


class Stfpm(AnomalibMethod):
    """anomalib's STFPM (Wang et al. 2021): a student regresses a frozen teacher's features."""

    Config = StfpmConfig
    config: StfpmConfig
    presets = _trained_presets(5)
    forces_pretrained = True

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        assert isinstance(config, StfpmConfig)
        need("anomalib.Stfpm's teacher (anomalib downloads timm's ImageNet weights)",
             "backbone_weights", config.backbone_weights,
             f"a {config.backbone} state_dict; or =imagenet for torchvision's cached weights, "
             "=random for a random teacher")
        super().check_config(config)

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.stfpm.torch_model import STFPMModel

        return STFPMModel(layers=list(self.config.layers), backbone=self.config.backbone)

    def backbones(self, model: Any) -> list[nn.Module]:
        return [model.teacher_model.feature_extractor]  # the student stays random (anomalib)

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        from anomalib.models.image.stfpm.loss import STFPMLoss

        c = self.config
        loss = STFPMLoss()
        opt = torch.optim.SGD(model.student_model.parameters(), lr=c.lr, momentum=c.momentum,
                              dampening=0.0, weight_decay=c.weight_decay)
        epochs_loop(self, model, train, ctx, c.epochs, opt, lambda m, x: loss(*m(x)))


# --------------------------------------------------------------------------------- DRAEM
@dataclass(frozen=True, kw_only=True)
class DraemConfig(AnomalibConfig):  # no pretrained backbone: no backbone_weights
    #: a folder of texture images (DTD), the anomaly source anomalib downloads itself
    dtd_dir: str | None = None
    enable_sspcab: bool = False
    sspcab_lambda: Annotated[float, Range(ge=0)] = 0.1
    beta: tuple[Annotated[float, Range(ge=0, le=1)], ...] = (0.1, 1.0)
    #: anomalib's Draem: Adam lr 1e-4, steps down ×0.1 at epochs 400 and 600; 700 epochs
    epochs: PositiveInt = 700
    lr: PositiveFloat = 1e-4
    milestones: tuple[Annotated[int, Range(ge=1)], ...] = (400, 600)
    batch_size: PositiveInt = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.beta) in (1, 2), f"beta={self.beta}: one number or a (low, high) range")


class Draem(AnomalibMethod):
    """anomalib's DRAEM (Zavrtanik et al. 2021): reconstruct, segment simulated anomalies."""

    Config = DraemConfig
    config: DraemConfig
    presets = _trained_presets(5)
    normalize_inputs = False  # anomalib's Draem pre-processor only resizes

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        assert isinstance(config, DraemConfig)
        need("anomalib.Draem's anomaly source (anomalib downloads the DTD textures)",
             "dtd_dir", config.dtd_dir, "a folder of texture images, e.g. DTD's dtd/images")
        path = Path(str(config.dtd_dir)).expanduser()
        require(path.is_dir(), f"dtd_dir={config.dtd_dir}: not a folder")
        anomalib_version()

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.draem.torch_model import DraemModel

        return DraemModel(sspcab=self.config.enable_sspcab)

    def backbones(self, model: Any) -> list[nn.Module]:
        return []

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
        from anomalib.models.image.draem.loss import DraemLoss

        c = self.config
        beta = c.beta[0] if len(c.beta) == 1 else (c.beta[0], c.beta[1])
        augmenter = PerlinAnomalyGenerator(
            anomaly_source_path=str(Path(str(c.dtd_dir)).expanduser()), blend_factor=beta)
        loss = DraemLoss()
        activations: dict[str, torch.Tensor] = {}
        if c.enable_sspcab:  # anomalib's hooks: SSPCAB's input and output in the encoder
            enc = model.reconstructive_subnetwork.encoder
            enc.mp4.register_forward_hook(lambda _m, _i, o: activations.__setitem__("in", o))
            enc.block5.register_forward_hook(lambda _m, _i, o: activations.__setitem__("out", o))

        def step(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            augmented, mask = augmenter(x)
            reconstruction, prediction = m(augmented)
            value = loss(x, reconstruction, mask, prediction)
            if c.enable_sspcab:
                value = value + c.sspcab_lambda * F.mse_loss(activations["in"], activations["out"])
            return value

        opt = torch.optim.Adam(model.parameters(), lr=c.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(c.milestones),
                                                     gamma=0.1)
        epochs_loop(self, model, train, ctx, c.epochs, opt, step, sched)


# ---------------------------------------------------------------------------- EfficientAD
#: the smallest input anomalib's EfficientAD takes: its encoder halves it five times, then
#: convolves it with an 8x8 kernel
EFFICIENT_AD_MIN_SIZE = 256


@dataclass(frozen=True, kw_only=True)
class EfficientAdConfig(AnomalibConfig):  # its teacher is a PDN, not a ResNet: teacher_weights
    #: a state dict of the pretrained PDN teacher (anomalib downloads it from its releases)
    teacher_weights: str | None = None
    #: a folder of images for the student's penalty (ImageNette, which anomalib downloads)
    penalty_images: str | None = None
    teacher_out_channels: PositiveInt = 384
    model_size: Literal["small", "medium"] = "small"
    padding: bool = False
    pad_maps: bool = True
    #: anomalib's EfficientAd: Adam lr 1e-4, weight decay 1e-5, one image per step; its config
    #: trains 1000 epochs or 70000 steps, whichever ends first (70000 steps in the paper)
    lr: PositiveFloat = 1e-4
    weight_decay: Annotated[float, Range(ge=0)] = 1e-5
    epochs: PositiveInt = 1000
    max_steps: PositiveInt = 70_000

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.image_size is None or self.image_size >= EFFICIENT_AD_MIN_SIZE,
                f"image_size={self.image_size}: anomalib's EfficientAD takes inputs of at least "
                f"{EFFICIENT_AD_MIN_SIZE} px")


def _image_files(folder: Path) -> list[Path]:
    """The images under ``folder`` (any depth, as ImageNette's class folders), sorted."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)


class EfficientAd(AnomalibMethod):
    """anomalib's EfficientAD (Batzner et al. 2024): a PDN student and an autoencoder regress a
    frozen pretrained PDN teacher, the student penalized on unrelated (ImageNette) images."""

    Config = EfficientAdConfig
    config: EfficientAdConfig
    presets = _trained_presets(2, EFFICIENT_AD_MIN_SIZE)
    normalize_inputs = False  # anomalib's EfficientAd normalizes inside its networks

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        assert isinstance(config, EfficientAdConfig)
        need("anomalib.EfficientAd's teacher (anomalib downloads its pretrained PDN)",
             "teacher_weights", config.teacher_weights,
             f"a state_dict of the {config.model_size} PDN teacher, e.g. anomalib's "
             f"pretrained_teacher_{config.model_size}.pth")
        need("anomalib.EfficientAd's penalty images (anomalib downloads ImageNette)",
             "penalty_images", config.penalty_images, "a folder of images, e.g. imagenette2")
        weights = Path(str(config.teacher_weights)).expanduser()
        require(weights.is_file(), f"teacher_weights={config.teacher_weights}: no such file")
        check_state_file(weights)
        folder = Path(str(config.penalty_images)).expanduser()
        require(folder.is_dir(), f"penalty_images={config.penalty_images}: not a folder")
        require(bool(_image_files(folder)), f"penalty_images={config.penalty_images}: no images")
        anomalib_version()

    def build_model(self, input_size: tuple[int, int]) -> nn.Module:
        from anomalib.models.image.efficient_ad.torch_model import (
            EfficientAdModel,
            EfficientAdModelSize,
        )

        c = self.config
        if min(input_size) < EFFICIENT_AD_MIN_SIZE:
            raise ValueError(f"anomalib.EfficientAd: {input_size[0]}x{input_size[1]} px inputs; "
                             f"it takes at least {EFFICIENT_AD_MIN_SIZE} px (--set image_size)")
        return EfficientAdModel(teacher_out_channels=c.teacher_out_channels,
                                model_size=EfficientAdModelSize(c.model_size),
                                padding=c.padding, pad_maps=c.pad_maps)

    def backbones(self, model: Any) -> list[nn.Module]:
        return []  # the teacher is a PDN: load_backbone loads teacher_weights

    def load_backbone(self, model: nn.Module, seed: int) -> str | None:
        """``teacher_weights`` into the teacher; its identity (file name and SHA-256)."""
        path = Path(str(self.config.teacher_weights)).expanduser()
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        name = f"pdn_{self.config.model_size}"
        try:
            model.teacher.load_state_dict(state, strict=True)  # type: ignore[union-attr]
        except RuntimeError as exc:
            raise WeightsError(f"{path} does not fit anomalib's {self.config.model_size} PDN "
                               f"teacher: {str(exc).splitlines()[-1].strip()[:200]}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return f"{name}:file:{path.name}:sha256={digest}"

    def penalty_batches(self, size: tuple[int, int], ctx: RunContext) -> Iterator[torch.Tensor]:
        """Penalty images one at a time, endlessly, each pass in a seeded random order, through
        anomalib's transform: resized to twice the input size, grayscale with probability 0.3,
        centre-cropped to the input size."""
        from PIL import Image
        from torchvision import transforms as T

        files = _image_files(Path(str(self.config.penalty_images)).expanduser())
        transform = T.Compose([T.Resize((size[0] * 2, size[1] * 2)), T.RandomGrayscale(p=0.3),
                               T.CenterCrop(size), T.ToTensor()])
        epoch = 0
        while True:
            for i in torch.randperm(len(files), generator=ctx.generator(20_000 + epoch)):
                with Image.open(files[int(i)]) as image:
                    yield transform(image.convert("RGB"))[None].to(ctx.device)
            epoch += 1

    def train_model(self, model: Any, train: TaskData, ctx: RunContext) -> None:
        """anomalib's recipe: the teacher's channel mean/std on the training images, then one
        training image and one penalty image per Adam step on the student and the autoencoder
        (loss: anomalib's ``st + ae + stae``; its StepLR ×0.1 after 95 % of the steps, stepped
        per epoch as Lightning steps it), then the quantiles of the unnormalized maps of the
        training images (anomalib takes its validation set's normal images; never the test)."""
        from anomalib.models.image.efficient_ad.torch_model import reduce_tensor_elems

        c = self.config
        bs = c.batch_size
        with torch.no_grad():  # running sums over the positions of all images, per channel
            n = 0
            total = torch.zeros(c.teacher_out_channels, dtype=torch.float64, device=ctx.device)
            squares = torch.zeros_like(total)
            for x in train.batches(bs):
                y = model.teacher(self.inputs(x, ctx)).double()
                n += y[:, 0].numel()
                total = total + y.sum(dim=(0, 2, 3))
                squares = squares + (y ** 2).sum(dim=(0, 2, 3))
            mean = total / n
            std = (squares / n - mean ** 2).sqrt()
            model.mean_std.update({"mean": mean.float()[None, :, None, None],
                                   "std": std.float()[None, :, None, None]})
        opt = torch.optim.Adam([*model.student.parameters(), *model.ae.parameters()],
                               lr=c.lr, weight_decay=c.weight_decay)
        steps = min(c.max_steps, c.epochs * len(train))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, int(0.95 * steps)),
                                                gamma=0.1)
        penalty = self.penalty_batches(train.size, ctx)
        epochs = -(-steps // len(train))
        done = 0
        for epoch in range(epochs):
            order = torch.randperm(len(train), generator=ctx.generator(offset=10_000 + epoch))
            for i in order[:steps - done]:
                opt.zero_grad()
                loss_st, loss_ae, loss_stae = model(batch=self.inputs(train.batch([int(i)]), ctx),
                                                    batch_imagenet=next(penalty))
                (loss_st + loss_ae + loss_stae).backward()
                opt.step()
                done += 1
            sched.step()
            ctx.report(epoch + 1, epochs)
        model.eval()
        with torch.no_grad():
            maps = [model.get_maps(self.inputs(x, ctx), normalize=False) for x in train.batches(bs)]
        quantiles = {}
        for key, index in (("st", 0), ("ae", 1)):
            flat = reduce_tensor_elems(torch.cat([m[index] for m in maps]))
            quantiles[f"qa_{key}"] = torch.quantile(flat, q=0.9)
            quantiles[f"qb_{key}"] = torch.quantile(flat, q=0.995)
        model.quantiles.update(quantiles)


#: every method of this plugin: entry-point name -> class (the names pyproject.toml declares)
METHODS: dict[str, type[AnomalibMethod]] = {
    f"anomalib.{cls.__name__}": cls
    for cls in (Patchcore, Padim, Dfm, Fastflow, ReverseDistillation, Cflow, Stfpm, Draem,
                EfficientAd)}
