"""The dataset contract: a protocol object per dataset name, and the :class:`TaskData` it yields.

A protocol knows its tasks (the normal classes of a one-class problem), where its files live,
and how to build ``(train, test)`` for one task. Images are resized once, at load time, to the
size the method asks for (:class:`InputSpec`) and kept as ``uint8`` tensors, exactly what
``ToTensor`` would see after the official code's PIL transforms; they are converted to floats in
``[0, 1]`` batch by batch.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, overload

import numpy as np
import torch
from PIL import Image

from bench.core.errors import ContractError, DataCorruptError, UsageError
from bench.core.metrics import MASK_RULE, defect_pixels

Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]

_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class InputSpec:
    """How a method wants its images: square resize, optional centre crop, interpolation.

    ``size=None`` keeps the dataset's default size. Masks follow the same geometry, resized
    bilinearly (soft masks, as the official MKD code does) and cropped alike.
    """

    size: int | None = None
    crop: int | None = None
    interpolation: Interpolation = "bilinear"

    def output_size(self, default: int) -> int:
        size = self.size or default
        return self.crop or size


def _crop_box(shape: tuple[int, int], fraction: float | None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centre crop that keeps ``fraction`` of each side, the
    region of a native-resolution mask that a cropped model input shows."""
    h, w = shape
    if fraction is None or fraction >= 1:
        return 0, 0, h, w
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    return round((h - ch) / 2.0), round((w - cw) / 2.0), ch, cw


class NativeMasks(Sequence[np.ndarray]):
    """Binary ground-truth masks at the dataset's own resolution, one per test image, made when
    asked (a test set of 1024 px masks stays on disk until the metric streams over it).

    ``crop_fraction`` is the share of each side the model's input keeps (``crop / size``; None
    without a crop): masks are centre-cropped alike, so they cover what the maps cover.
    """

    #: how mask values become binary, for the record's pixel protocol
    binarization: ClassVar[str] = ""

    def __init__(self, count: int, crop_fraction: float | None = None) -> None:
        self._count = count
        self.crop_fraction = crop_fraction

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        full = self._full(i % len(self))
        top, left, h, w = _crop_box(full.shape, self.crop_fraction)
        return full[top:top + h, left:left + w]

    def shapes(self) -> list[tuple[int, int]]:
        """Every mask's size, without making the masks where the sizes are known otherwise."""
        return [_crop_box(self._full_shape(i), self.crop_fraction)[2:] for i in range(len(self))]

    @abc.abstractmethod
    def _full(self, i: int) -> np.ndarray:
        """Mask ``i`` before the crop, boolean."""

    @abc.abstractmethod
    def _full_shape(self, i: int) -> tuple[int, int]:
        """Mask ``i``'s size before the crop."""

    @abc.abstractmethod
    def subset(self, index: Sequence[int]) -> NativeMasks:
        """The masks of the given images, in that order."""


class ArrayMasks(NativeMasks):
    """Masks held in memory (synthetic data); ``None`` is an all-normal mask of ``shape``."""

    binarization = MASK_RULE

    def __init__(self, masks: Sequence[np.ndarray | None], shapes: Sequence[tuple[int, int]],
                 crop_fraction: float | None = None) -> None:
        super().__init__(len(masks), crop_fraction)
        self._masks = list(masks)
        self._shapes = [(int(h), int(w)) for h, w in shapes]

    def _full(self, i: int) -> np.ndarray:
        mask = self._masks[i]
        return np.zeros(self._shapes[i], dtype=bool) if mask is None else defect_pixels(mask)

    def _full_shape(self, i: int) -> tuple[int, int]:
        return self._shapes[i]

    def subset(self, index: Sequence[int]) -> ArrayMasks:
        return ArrayMasks([self._masks[int(i)] for i in index],
                          [self._shapes[int(i)] for i in index], self.crop_fraction)


class FileMasks(NativeMasks):
    """Masks read from their files when asked; a test image without a mask file (a normal one)
    has an all-normal mask of the image's size. Any non-zero pixel marks a defect, as the MVTec
    AD evaluation reads its ground truth."""

    binarization = MASK_RULE

    def __init__(self, mask_paths: Sequence[Path | None], image_paths: Sequence[Path],
                 crop_fraction: float | None = None) -> None:
        if len(mask_paths) != len(image_paths):
            raise ValueError("one mask path (or None) per image is required")
        super().__init__(len(mask_paths), crop_fraction)
        self.mask_paths = list(mask_paths)
        self.image_paths = list(image_paths)
        self._sizes: dict[Path, tuple[int, int]] = {}  # image headers read once

    def _full(self, i: int) -> np.ndarray:
        path = self.mask_paths[i]
        if path is None:
            return np.zeros(self._full_shape(i), dtype=bool)
        mask = mask_pixels(read_image(path))
        if mask.shape != self._full_shape(i):
            raise DataCorruptError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} px but its "
                                   f"image {self.image_paths[i]} is "
                                   f"{self._full_shape(i)[1]}x{self._full_shape(i)[0]} px")
        return mask

    def _full_shape(self, i: int) -> tuple[int, int]:
        path = self.image_paths[i]
        if path not in self._sizes:  # the metric asks for every size first, then each mask
            try:
                with Image.open(path) as im:
                    self._sizes[path] = (int(im.size[1]), int(im.size[0]))
            except OSError as exc:
                raise DataCorruptError(f"cannot read image {path}: {exc}") from None
        return self._sizes[path]

    def subset(self, index: Sequence[int]) -> FileMasks:
        return FileMasks([self.mask_paths[int(i)] for i in index],
                         [self.image_paths[int(i)] for i in index], self.crop_fraction)


def crop_fraction(spec: InputSpec, default_size: int) -> float | None:
    """The share of each side a model input keeps after ``spec``'s centre crop (None: all)."""
    if not spec.crop:
        return None
    return spec.crop / (spec.size or default_size)


class TaskData(torch.utils.data.Dataset):
    """Images, labels and masks of one split of one task.

    Items are ``(image float CxHxW in [0,1], label 0 normal / 1 anomaly, mask HxW float or
    None)``. Masks hold values in ``[0, 1]``; resizing can make their borders soft, and the
    standard pixel metrics binarize them at 0.5.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: np.ndarray | Sequence[int],
        masks: torch.Tensor | None = None,
        ids: Sequence[str] | None = None,
        *,
        native_size: tuple[int, int] | None = None,
        name: str = "",
        native_masks: NativeMasks | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 tensor of shape N x C x H x W")
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(images):
            raise ValueError("one label per image is required")
        if masks is not None and (masks.ndim != 3 or masks.shape[0] != len(images)
                                  or masks.shape[1:] != images.shape[2:]):
            raise ValueError("masks must be N x H x W, matching the images")
        self.images = images
        self.labels = labels
        self.masks = masks
        self.ids = list(ids) if ids is not None else [f"{name}:{i}" for i in range(len(images))]
        self.native_size = native_size or (int(images.shape[2]), int(images.shape[3]))
        self.name = name
        if native_masks is not None and len(native_masks) != len(images):
            raise ValueError("native_masks must hold one mask per image")
        #: the masks at the dataset's own resolution, for the standard pixel metrics (None: the
        #: masks above are at the dataset's resolution already)
        self.native_masks = native_masks

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        mask = self.masks[i] if self.masks is not None else None
        return self.images[i].float().div_(255), int(self.labels[i]), mask

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    def batch(self, index: Sequence[int] | slice | torch.Tensor) -> torch.Tensor:
        """Float images in ``[0, 1]`` for the given indices."""
        return self.images[index].float().div_(255)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Float batches in order (no shuffling): for scoring."""
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))

    def subset(self, index: Sequence[int] | np.ndarray) -> TaskData:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return TaskData(
            self.images[idx],
            self.labels[idx.numpy()],
            self.masks[idx] if self.masks is not None else None,
            [self.ids[int(i)] for i in idx],
            native_size=self.native_size,
            name=self.name,
            native_masks=(self.native_masks.subset([int(i) for i in idx])
                          if self.native_masks is not None else None),
        )


# ----------------------------------------------------------------------------- image helpers


def to_pil(array: np.ndarray) -> Image.Image:
    """HxW or HxWxC array (uint8, or float in [0, 1]) to a PIL image."""
    if array.dtype != np.uint8:
        array = np.clip(np.rint(np.asarray(array, dtype=np.float64) * 255.0), 0, 255)
        array = array.astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def _center_crop(img: Image.Image, crop: int) -> Image.Image:
    w, h = img.size
    left = round((w - crop) / 2.0)
    top = round((h - crop) / 2.0)
    return img.crop((left, top, left + crop, top + crop))


def transform_image(img: Image.Image, spec: InputSpec, default_size: int) -> np.ndarray:
    """Resize (and crop) like torchvision's PIL transforms; returns uint8 CxHxW, 3 channels."""
    img = img.convert("RGB")
    size = spec.size or default_size
    if img.size != (size, size):
        img = img.resize((size, size), _PIL_FILTERS[spec.interpolation])
    if spec.crop:
        img = _center_crop(img, spec.crop)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def mask_pixels(mask: Image.Image) -> np.ndarray:
    """The defect pixels of a mask image by :data:`~bench.core.metrics.MASK_RULE` (``H x W``
    booleans): any non-zero value in any channel; an alpha channel is dropped first, a palette
    image read through its colours."""
    if mask.mode in ("P", "PA"):
        mask = mask.convert("RGBA")
    if mask.mode in ("RGBA", "RGBa", "LA", "La"):
        mask = mask.convert("L" if mask.mode.startswith("L") else "RGB")
    return defect_pixels(np.asarray(mask))


def transform_mask(mask: Image.Image | None, spec: InputSpec, default_size: int) -> np.ndarray:
    """A mask at the model's size: its defect pixels (:func:`mask_pixels`) as 0/255, resized
    bilinearly to a soft float mask in [0, 1] (cropped like the image); None gives zeros."""
    size = spec.size or default_size
    out = spec.crop or size
    if mask is None:
        return np.zeros((out, out), dtype=np.float32)
    mask = Image.fromarray(mask_pixels(mask).astype(np.uint8) * 255)
    if mask.size != (size, size):
        mask = mask.resize((size, size), Image.Resampling.BILINEAR)
    if spec.crop:
        mask = _center_crop(mask, spec.crop)
    return np.asarray(mask, dtype=np.float32) / 255.0


def build_taskdata(
    images: Sequence[Image.Image],
    labels: Sequence[int] | np.ndarray,
    spec: InputSpec,
    default_size: int,
    *,
    masks: Sequence[Image.Image | None] | None = None,
    ids: Sequence[str] | None = None,
    name: str = "",
) -> TaskData:
    """Transform PIL images (and masks) once into a :class:`TaskData`."""
    if not images:
        raise ValueError(f"{name}: no images")
    native = images[0].size[::-1]
    arr = np.stack([transform_image(im, spec, default_size) for im in images])
    mask_t = None
    native_masks = None
    if masks is not None:
        m = np.stack([transform_mask(mk, spec, default_size) for mk in masks])
        mask_t = torch.from_numpy(m)
        native_masks = ArrayMasks(
            [None if mk is None else mask_pixels(mk) for mk in masks],
            [im.size[::-1] for im in images], crop_fraction(spec, default_size))
    return TaskData(torch.from_numpy(arr), labels, mask_t, ids,
                    native_size=(int(native[0]), int(native[1])), name=name,
                    native_masks=native_masks)


def read_image(path: Path) -> Image.Image:
    """Open an image fully; a damaged file raises :class:`DataCorruptError` naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataCorruptError(f"cannot read image {path}: {exc}") from None


# ------------------------------------------------------------------------------ index helpers


def one_vs_rest(labels: np.ndarray, normal: int) -> np.ndarray:
    """Anomaly labels of a one-vs-rest protocol: 1 where the class differs from ``normal``."""
    return (np.asarray(labels) != normal).astype(np.int64)


def split_per_class(labels: np.ndarray, fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split of indices into (pool A, pool B), ``fraction`` in A."""
    rng = np.random.default_rng(seed)
    a: list[np.ndarray] = []
    b: list[np.ndarray] = []
    labels = np.asarray(labels)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        k = round(len(idx) * fraction)
        a.append(idx[:k])
        b.append(idx[k:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


# ----------------------------------------------------------------------------- the protocol


@dataclass(frozen=True)
class DatasetInfo:
    """What a user needs to know about a dataset before using it."""

    title: str
    source: str
    license: str
    size: str
    obtain: str


class DatasetProtocol(abc.ABC):
    """One dataset's one-class protocol. Subclasses set the class attributes and :meth:`load`."""

    name: ClassVar[str]
    family: ClassVar[str]          # key for method presets (e.g. MKD's per-dataset settings)
    default_size: ClassVar[int]    # square side used when the method does not ask for a size
    has_masks: ClassVar[bool] = False
    embedded: ClassVar[bool] = False  # ships with the code: no download, no root
    #: its tasks are categories, each with its own normal images and defects (MVTec-like), so
    #: one model can be trained on all of them: the unified setting. False for one-vs-rest
    #: protocols (digits, CIFAR-10), whose union of normal classes holds every anomaly
    supports_unified: ClassVar[bool] = False
    info: ClassVar[DatasetInfo]

    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """The normal classes / categories, in the paper's order."""

    @abc.abstractmethod
    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        """Build ``(train, test)`` for ``task``; train holds normal images only."""

    def tasks_in(self, root: Path | None) -> list[str]:
        """The tasks given the data root: the fixed :meth:`tasks` list, except for datasets
        whose tasks are folders on disk (``folder``)."""
        return self.tasks()

    def check_task(self, task: str) -> str:
        tasks = self.tasks()
        if task not in tasks:
            raise UsageError(
                f"unknown task {task!r} for dataset {self.name}; choose from: {', '.join(tasks)}"
            )
        return task

    def check_available(self, root: Path | None) -> None:
        """Raise :class:`DataMissingError` naming the expected path and how to get the data."""
        return None

    def check_tasks(self, root: Path | None, tasks: Sequence[str]) -> None:
        """Raise :class:`DataMissingError` (or :class:`DataCorruptError`) when the files of one
        of ``tasks`` cannot make a job, naming the path and the expected layout; checked for the
        selected tasks before a run starts, after :meth:`check_available`. Nothing by default:
        datasets whose tasks are fixed lists are complete once they are available."""
        return None

    def location(self, root: Path | None) -> Path | None:
        """Where this dataset's files live under ``root`` (None for embedded datasets)."""
        if self.embedded or root is None:
            return None
        return Path(root) / self.name


def protocol_problems(ds: DatasetProtocol) -> list[str]:
    """What is wrong with what a dataset protocol declares, each in a few words (empty:
    nothing): cheap, structural checks made when a plugin is loaded (and by
    :func:`bench.testing.check_dataset`)."""
    out: list[str] = []
    cls = type(ds)
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        out.append(f"does not implement {missing}")
    for attr, kind in (("name", str), ("family", str), ("default_size", int),
                       ("has_masks", bool), ("embedded", bool), ("supports_unified", bool),
                       ("info", DatasetInfo)):
        value = getattr(ds, attr, None)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            out.append(f"{attr} is {value!r}, not a {kind.__name__}")
    size = getattr(ds, "default_size", None)
    if isinstance(size, int) and size < 1:
        out.append(f"default_size is {size}, not >= 1")
    return out


def as_protocol(name: str, obj: object) -> DatasetProtocol:
    """The protocol a plugin provides under ``name``: a :class:`DatasetProtocol` instance, or a
    subclass built without arguments. Raises :class:`~bench.core.errors.ContractError` naming
    what breaks the contract."""
    if isinstance(obj, type) and issubclass(obj, DatasetProtocol):
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise ContractError(f"{obj.__name__} does not implement {missing}")
        obj = obj()
    if not isinstance(obj, DatasetProtocol):
        what = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        raise ContractError(f"{what} is neither a DatasetProtocol subclass nor an instance "
                        "(bench.datasets.base)")
    problems = protocol_problems(obj)
    if problems:
        raise ContractError("; ".join(problems))
    return obj
