"""``mnist``, ``fashion_mnist`` and ``cifar10``: the paper's one-vs-rest protocol, read through
``torchvision.datasets`` from the files torchvision itself downloads.

Task ``k`` (``"0"`` … ``"9"``, kept as strings so tables line up with the paper): train = the
images of class ``k`` in the official training split (about 6,000 / 6,000 / 5,000); test = the
whole official test split (10,000), label 1 where the class differs from ``k``. Same for every
seed: the split is fixed by the dataset.

Layout under the data root (what torchvision writes with ``download=True``)::

    <root>/mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <root>/fashion_mnist/FashionMNIST/raw/...            (same file names)
    <root>/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}

Checksums are torchvision's own: the md5 of each downloaded ``.gz`` archive (MNIST, Fashion-MNIST;
torchvision keeps them next to the extracted files) and of each CIFAR batch file, read from the
torchvision classes at run time so they cannot drift. CIFAR batches are md5-checked by torchvision
on every load; a failure becomes a :class:`DataCorruptError` naming the folder.

A local copy of the official files (``bench data fetch NAME --from DIR``, :meth:`import_from`)
is linked into this layout, ``.gz`` files decompressed beside their link (see
:mod:`datasets.local`). A ``.gz`` whose md5 is not the official one but which decompresses to
exactly the file that is read (a recompressed copy, e.g. Debian's ``dataset-fashion-mnist``) is
reported as ``recompressed``, not as a failure; :meth:`content_checks` then stand in for the
archive checksum: idx headers (magic number, image count, 28x28), one label per image, and the
per-class counts of the manifest.

Default sizes: 32 px for all three (MNIST/Fashion-MNIST are resized from 28 to 32 bilinearly, as
the official code does; CIFAR-10 is kept at its native 32 px here, and MKD's preset asks for
the paper's 256 px Lanczos resize and 224 centre crop).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torchvision
from torchvision.datasets.mnist import read_label_file

from bench.core.errors import DataCorruptError, DataMissingError, UsageError
from bench.datasets._loading import load_arrays
from bench.datasets.base import DatasetInfo, InputSpec, TaskData, one_vs_rest
from bench.datasets.download import Archive, check_file, extract
from bench.datasets.local import find_file, gunzip, gz_content_equals, link
from bench.datasets.stored import Check, StoredDataset, checksum_check, manifest

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


class _TorchvisionClasses(StoredDataset):
    """One-vs-rest over the ten classes of a torchvision classification set."""

    tv_name: ClassVar[str]
    class_names: ClassVar[tuple[str, ...]]
    fetch_mode = "torchvision"
    default_size = 32

    def tv_class(self) -> Any:
        return getattr(torchvision.datasets, self.tv_name)

    def tasks(self) -> list[str]:
        return list(DIGITS)

    def check_task(self, task: str) -> str:
        if task not in DIGITS:
            names = ", ".join(f"{i} ({n})" for i, n in enumerate(self.class_names))
            raise UsageError(f"unknown task {task!r} for dataset {self.name}; tasks are class "
                             f"indices: {names}")
        return task

    def download_urls(self) -> list[str]:
        """torchvision's own addresses: every mirror of every file (MNIST-like), or the one
        archive (CIFAR-10)."""
        cls = self.tv_class()
        if hasattr(cls, "mirrors"):
            return [f"{mirror}{name}" for mirror in cls.mirrors for name, _ in cls.resources]
        return [cls.url]

    def manual_steps(self, root: Path | None) -> str:
        return (f"bench data fetch {self.name}   (torchvision downloads it into "
                f"{self.location(root)})")

    def fetch(self, root: Path | None) -> Path:
        """Download both splits with torchvision's own downloader (md5-checked by torchvision)."""
        loc = self.location(root)
        loc.mkdir(parents=True, exist_ok=True)
        cls = self.tv_class()
        try:
            for train in (True, False):
                cls(root=str(loc), train=train, download=True)
        except Exception as exc:  # torchvision raises RuntimeError / URLError / OSError
            raise DataMissingError(f"{self.name}: torchvision's download failed: {exc}") from None
        return loc

    def arrays(self, base: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 [N,H,W] or [N,H,W,3], class labels [N]) of one official split."""
        try:
            ds = self.tv_class()(root=str(base), train=train, download=False)
        except (RuntimeError, OSError, ValueError, AssertionError,
                pickle.UnpicklingError, EOFError) as exc:
            raise DataCorruptError(f"{self.name}: cannot read the {'train' if train else 'test'}"
                                   f" split in {base}: {exc}; check it with: bench data verify "
                                   f"{self.name}") from None
        data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
        targets = np.asarray(ds.targets, dtype=np.int64)
        return np.ascontiguousarray(data, dtype=np.uint8), targets

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        spec = spec or InputSpec()
        normal = int(task)
        base = self.require(root)
        x, y = self.arrays(base, True)
        idx = np.flatnonzero(y == normal)
        native = (int(x.shape[1]), int(x.shape[2]))
        train = TaskData(load_arrays(x[idx], spec, self.default_size),
                         np.zeros(len(idx), dtype=np.int64),
                         ids=[f"{self.name}/train/{i}" for i in idx], native_size=native,
                         name=f"{self.name}/{task}/train")
        del x
        tx, ty = self.arrays(base, False)
        test = TaskData(load_arrays(tx, spec, self.default_size), one_vs_rest(ty, normal),
                        ids=[f"{self.name}/test/{i}" for i in range(len(ty))],
                        native_size=native, name=f"{self.name}/{task}/test")
        return train, test

    def count(self, base: Path) -> dict[str, int]:
        out: dict[str, int] = {}
        for split, train in (("train", True), ("test", False)):
            labels = self.labels(base, train)
            out[split] = len(labels)
            for k, n in zip(*np.unique(labels, return_counts=True), strict=True):
                out[f"{split}/{int(k)}"] = int(n)
        return out

    def labels(self, base: Path, train: bool) -> np.ndarray:
        return self.arrays(base, train)[1]


class _MNISTLike(_TorchvisionClasses):
    layout = "<MNIST|FashionMNIST>/raw/*-ubyte"

    def raw(self, base: Path) -> Path:
        return base / self.tv_name / "raw"

    def accepts(self, folder: Path) -> bool:
        raw = self.raw(folder)
        return all((raw / f.removesuffix(".gz")).is_file() for f, _ in self.tv_class().resources)

    def missing_message(self, root: Path | None) -> str:
        return (f"{self.name} not found: expected {self.raw(self.location(root))}/"
                f"train-images-idx3-ubyte (and the other idx files); {self.fetch_hint()}")

    def labels(self, base: Path, train: bool) -> np.ndarray:
        name = "train" if train else "t10k"
        try:
            return read_label_file(str(self.raw(base) / f"{name}-labels-idx1-ubyte")).numpy()
        except (OSError, AssertionError, TypeError, RuntimeError) as exc:
            raise DataCorruptError(f"{self.name}: bad label file in {self.raw(base)}: {exc}"
                                   ) from None

    def checksum_checks(self, base: Path) -> list[Check]:
        """The md5 of each ``.gz`` beside its extracted file (torchvision keeps the download
        there); a ``.gz`` of other bytes that decompresses to the extracted file is
        ``recompressed``, and an official one whose content differs from it is a mismatch."""
        out = []
        for f, md5 in self.tv_class().resources:
            packed, plain = self.raw(base) / f, self.raw(base) / f.removesuffix(".gz")
            check = checksum_check(packed, Archive(f, md5=md5),
                                   absent=("archive absent (extracted file only)", "unknown"))
            if check.state in ("ok", "mismatch") and plain.is_file():
                same = gz_content_equals(packed, plain)
                if same and check.state == "mismatch":
                    check = Check(f, check.expected, "other md5, same content as "
                                  f"{plain.name}: a recompressed copy", "recompressed")
                elif not same:
                    check = Check(f, check.expected, check.found + (
                        "; not a gzip file" if same is None else
                        f"; its content differs from {plain.name}"), "mismatch")
            out.append(check)
        return out

    def content_checks(self, base: Path) -> list[Check]:
        """The idx headers: magic number, count (the manifest's), 28x28, file size."""
        counts = manifest(self.name).get("counts", {})
        out = []
        for split, prefix in (("train", "train"), ("test", "t10k")):
            n_images = None
            for kind, magic, dims in (("images-idx3", 0x803, (28, 28)), ("labels-idx1", 0x801, ())):
                path = self.raw(base) / f"{prefix}-{kind}-ubyte"
                want = counts.get(split) if kind.startswith("images") else n_images
                shape = "x".join(str(d) for d in (want if want is not None else "N", *dims))
                out.append(Check(f"{path.name} header", shape, *idx_header(path, magic, dims,
                                                                             want)))
                if kind.startswith("images"):
                    n_images = idx_count(path)
        return out

    def import_from(self, root: Path | None, folder: Path) -> str:
        """Link the four idx files of ``folder`` (``.gz`` or extracted; in ``folder``, its
        ``raw/`` or ``<FashionMNIST|MNIST>/raw/``) into the layout; decompress a ``.gz``
        that has no extracted twin."""
        subfolders = ("", "raw", f"{self.tv_name}/raw")
        found = []
        for gz_name, _ in self.tv_class().resources:
            name = gz_name.removesuffix(".gz")
            plain = find_file(folder, name, subfolders)
            packed = find_file(folder, gz_name, subfolders)
            if plain is None and packed is None:
                raise DataMissingError(f"{self.name}: neither {name} nor {gz_name} in {folder} "
                                       f"(nor in its raw/ or {self.tv_name}/raw/)")
            found.append((name, plain, packed))
        raw = self.raw(self.location(root))
        done = {"linked": 0, "decompressed": 0}
        for name, plain, packed in found:
            if packed is not None:
                link(packed, raw / f"{name}.gz")
                done["linked"] += 1
            if plain is not None:
                link(plain, raw / name)
                done["linked"] += 1
            else:
                assert packed is not None
                gunzip(packed, raw / name)
                done["decompressed"] += 1
        return (f"{self.name}: {done['linked']} file(s) linked from {folder}, "
                f"{done['decompressed']} decompressed, into {raw}; check them with: "
                f"bench data verify {self.name}")


class MNIST(_MNISTLike):
    name = "mnist"
    family = "mnist"
    tv_name = "MNIST"
    class_names = DIGITS
    info = DatasetInfo(
        title="MNIST handwritten digits (LeCun, Cortes, Burges)",
        source="http://yann.lecun.com/exdb/mnist/ (downloaded by torchvision.datasets.MNIST)",
        license="CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
        size="70,000 grey 28x28 images (60,000 train / 10,000 test), about 12 MB compressed",
        obtain="bench data fetch mnist",
    )


class FashionMNIST(_MNISTLike):
    name = "fashion_mnist"
    family = "fashion_mnist"
    tv_name = "FashionMNIST"
    class_names = FASHION_CLASSES
    info = DatasetInfo(
        title="Fashion-MNIST (Xiao, Rasul, Vollgraf, 2017)",
        source="https://github.com/zalandoresearch/fashion-mnist "
               "(downloaded by torchvision.datasets.FashionMNIST)",
        license="MIT (Zalando SE)",
        size="70,000 grey 28x28 images (60,000 train / 10,000 test), about 30 MB compressed",
        obtain="bench data fetch fashion_mnist",
    )


class CIFAR10(_TorchvisionClasses):
    name = "cifar10"
    family = "cifar10"
    tv_name = "CIFAR10"
    class_names = CIFAR_CLASSES
    layout = "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"
    info = DatasetInfo(
        title="CIFAR-10 (Krizhevsky, 2009)",
        source="https://www.cs.toronto.edu/~kriz/cifar.html "
               "(downloaded by torchvision.datasets.CIFAR10)",
        license="no licence stated by the authors; cite Krizhevsky (2009)",
        size="60,000 colour 32x32 images (50,000 train / 10,000 test), 163 MB compressed",
        obtain="bench data fetch cifar10",
    )

    def _files(self) -> list[tuple[str, str]]:
        cls = self.tv_class()
        return [(f, m) for f, m in cls.train_list + cls.test_list] + [
            (cls.meta["filename"], cls.meta["md5"])]

    def accepts(self, folder: Path) -> bool:
        base = folder / self.tv_class().base_folder
        return all((base / f).is_file() for f, _ in self._files())

    def labels(self, base: Path, train: bool) -> np.ndarray:
        cls = self.tv_class()
        out: list[int] = []
        for filename, _ in cls.train_list if train else cls.test_list:
            path = base / cls.base_folder / filename
            try:
                with open(path, "rb") as fh:
                    out.extend(pickle.load(fh, encoding="latin1")["labels"])
            except (OSError, pickle.UnpicklingError, EOFError, KeyError) as exc:
                raise DataCorruptError(f"cifar10: cannot read {path}: {exc}") from None
        return np.asarray(out, dtype=np.int64)

    def checksum_checks(self, base: Path) -> list[Check]:
        folder = base / self.tv_class().base_folder
        return [checksum_check(folder / f, Archive(f, md5=md5), absent=("absent", "missing"))
                for f, md5 in self._files()]

    def content_checks(self, base: Path) -> list[Check]:
        """Each batch: one label per image, 3x32x32 = 3072 bytes per image."""
        cls = self.tv_class()
        out = []
        for filename, _ in cls.train_list + cls.test_list:
            path = base / cls.base_folder / filename
            try:
                with open(path, "rb") as fh:
                    batch = pickle.load(fh, encoding="latin1")
                data, labels = np.asarray(batch["data"]), batch["labels"]
            except (OSError, pickle.UnpicklingError, EOFError, KeyError) as exc:
                out.append(Check(f"{filename} shape", "Nx3072", f"unreadable: {exc}", "mismatch"))
                continue
            found = "x".join(map(str, data.shape)) + f", {len(labels)} labels"
            good = data.ndim == 2 and data.shape[1] == 3072 and len(labels) == data.shape[0]
            out.append(Check(f"{filename} shape", "Nx3072, N labels", found,
                             "ok" if good else "mismatch"))
        return out

    def import_from(self, root: Path | None, folder: Path) -> str:
        """Unpack ``cifar-10-python.tar.gz`` from ``folder`` (md5 checked against the official
        one; unpacked either way, the batches have md5s of their own), or link its batches (in
        ``folder`` or ``folder/cifar-10-batches-py``)."""
        cls = self.tv_class()
        loc = self.location(root)
        archive = find_file(folder, cls.filename)
        if archive is not None:
            try:
                checked = check_file(archive, Archive(cls.filename, md5=cls.tgz_md5))
            except DataCorruptError:
                checked = ("md5 differs from the official archive (its batch files are checked "
                           "by their own md5s)")
            extract(archive, loc)
            if self.find(root) is None:
                raise DataMissingError(f"{archive} was unpacked into {loc}, but the expected "
                                       f"layout {self.layout} was not found there")
            return (f"{self.name}: {archive.name} ({checked}) unpacked into {loc}; check it "
                    f"with: bench data verify {self.name}")
        names = [f for f, _ in self._files()]
        paths = [find_file(folder, f, ("", cls.base_folder)) for f in names]
        absent = [f for f, p in zip(names, paths, strict=True) if p is None]
        if absent:
            raise DataMissingError(f"{self.name}: neither {cls.filename} nor the batch files "
                                   f"in {folder} (missing: {', '.join(absent)})")
        for f, p in zip(names, paths, strict=True):
            assert p is not None
            link(p, loc / cls.base_folder / f)
        return (f"{self.name}: {len(names)} batch file(s) linked from {folder} into "
                f"{loc / cls.base_folder}; check them with: bench data verify {self.name}")


def idx_count(path: Path) -> int | None:
    """The first dimension stated in an idx file's header (None if unreadable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return int.from_bytes(head[4:8], "big") if len(head) == 8 else None


def idx_header(path: Path, magic: int, dims: tuple[int, ...], count: int | None
               ) -> tuple[str, str]:
    """(found text, state) of an idx file's header against ``magic``, ``count`` x ``dims``,
    and its size against the header."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4 + 4 * (1 + len(dims)))
    except OSError:
        return "absent", "missing"
    if len(head) < 4 + 4 * (1 + len(dims)) or int.from_bytes(head[:4], "big") != magic:
        return "not an idx file of this kind (magic number)", "mismatch"
    shape = [int.from_bytes(head[i:i + 4], "big") for i in range(4, len(head), 4)]
    body = int(np.prod(shape))
    text = "x".join(map(str, shape))
    if size != len(head) + body:
        return f"{text}, but {size} bytes instead of {len(head) + body}", "mismatch"
    good = tuple(shape[1:]) == dims and (count is None or shape[0] == count)
    return text, "ok" if good else "mismatch"
