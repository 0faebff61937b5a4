"""Tiny fake datasets written in the real on-disk formats and layouts.

- MNIST / Fashion-MNIST: big-endian idx-ubyte files (magic 0x0803 images, 0x0801 labels), both
  extracted and ``.gz`` (as torchvision leaves them), under ``<name>/<TorchvisionName>/raw``.
- CIFAR-10: pickled batches (``data`` uint8 [N, 3072] in CHW order, ``labels``) and
  ``batches.meta``, under ``cifar10/cifar-10-batches-py``. Their md5s are returned so that a test
  can point torchvision's own md5 check at them (:func:`patch_torchvision_md5s`).
- MVTec / folder: PNG trees with ``<stem>_mask.png`` masks; OCT: JPEG trees inside ``OCT2017 /``;
  HeadCT: ``labels.csv`` (with the distributed ``" hemorrhage"`` header) and
  ``head_ct/head_ct/<id:03d>.png``; BrainMRI: ``no``/``yes`` with mixed JPEG/PNG files.

Normal images are smooth grey gradients; anomalies carry a bright square, so that simple
detectors separate them.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _normal(rng: np.random.Generator, size: int, channels: int = 1) -> np.ndarray:
    base = np.linspace(60, 120, size)[None, :] + rng.normal(0, 6, (size, size))
    img = np.clip(base, 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], channels, axis=2) if channels > 1 else img


def _anomalous(rng: np.random.Generator, size: int, channels: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
    img = _normal(rng, size, channels)
    mask = np.zeros((size, size), dtype=np.uint8)
    y, x = rng.integers(0, size // 2, size=2)
    s = size // 3
    img[y:y + s, x:x + s] = 250
    mask[y:y + s, x:x + s] = 255
    return img, mask


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------- torchvision formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx-ubyte file (the MNIST format): magic, big-endian dims, raw uint8 data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    data = header + array.tobytes()
    path.write_bytes(data)
    Path(f"{path}.gz").write_bytes(gzip.compress(data, mtime=0))


def fake_mnist(root: Path, name: str = "mnist", folder: str = "MNIST", per_class: int = 4,
               test_per_class: int = 3, seed: int = 0) -> dict[str, str]:
    """Write train/t10k idx files; returns {gz file name: md5}."""
    rng = np.random.default_rng(seed)
    raw = root / name / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        images = np.stack([_normal(rng, 28) // (1 + k % 3) for k in labels])
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return {p.name: md5(p) for p in raw.glob("*.gz")}


def fake_cifar(root: Path, per_class: int = 2, test_per_class: int = 2, seed: int = 0
               ) -> dict[str, str]:
    """Write the five train batches, the test batch and the meta file; returns {file: md5}."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(path: Path, labels: np.ndarray) -> None:
        data = rng.integers(0, 256, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
        data[:, :1024] = (labels[:, None] * 25).astype(np.uint8)  # class-dependent red plane
        with open(path, "wb") as fh:
            pickle.dump({"batch_label": path.name, "labels": labels.tolist(), "data": data}, fh)

    train_labels = np.repeat(np.arange(10), per_class)
    for i, chunk in enumerate(np.array_split(train_labels, 5), start=1):
        batch(folder / f"data_batch_{i}", chunk)
    batch(folder / "test_batch", np.repeat(np.arange(10), test_per_class))
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                     "frog", "horse", "ship", "truck"]}, fh)
    return {p.name: md5(p) for p in folder.iterdir()}


def patch_torchvision_md5s(monkeypatch, mnist: dict[str, str] | None = None,
                           cifar: dict[str, str] | None = None,
                           fashion: dict[str, str] | None = None) -> None:
    """Point torchvision's own checksum tables at the fake files (its checks still run)."""
    import torchvision.datasets as tvd

    for cls, sums in ((tvd.MNIST, mnist), (tvd.FashionMNIST, fashion)):
        if sums:
            monkeypatch.setattr(cls, "resources", [(f, m) for f, m in sorted(sums.items())])
    if cifar:
        monkeypatch.setattr(tvd.CIFAR10, "train_list",
                            [[f"data_batch_{i}", cifar[f"data_batch_{i}"]] for i in range(1, 6)])
        monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", cifar["test_batch"]]])
        monkeypatch.setattr(tvd.CIFAR10, "meta", {"filename": "batches.meta",
                                                  "key": "label_names",
                                                  "md5": cifar["batches.meta"]})


# --------------------------------------------------------------------------- folder layouts


def fake_mvtec_category(folder: Path, *, n_train: int = 5, n_good: int = 3,
                        defects: dict[str, int] | None = None, size: int = 24, seed: int = 0,
                        masks: bool = True) -> None:
    """``<folder>/{train/good, test/<defect|good>, ground_truth/<defect>/<stem>_mask.png}``."""
    rng = np.random.default_rng(seed)
    defects = defects if defects is not None else {"broken": 2, "crack": 2}
    (folder / "train" / "good").mkdir(parents=True)
    for i in range(n_train):
        Image.fromarray(_normal(rng, size, 3)).save(folder / "train" / "good" / f"{i:03d}.png")
    (folder / "test" / "good").mkdir(parents=True)
    for i in range(n_good):
        Image.fromarray(_normal(rng, size, 3)).save(folder / "test" / "good" / f"{i:03d}.png")
    for defect, n in defects.items():
        (folder / "test" / defect).mkdir(parents=True)
        if masks:
            (folder / "ground_truth" / defect).mkdir(parents=True)
        for i in range(n):
            img, mask = _anomalous(rng, size, 3)
            Image.fromarray(img).save(folder / "test" / defect / f"{i:03d}.png")
            if masks:
                Image.fromarray(mask).save(folder / "ground_truth" / defect / f"{i:03d}_mask.png")


def fake_mvtec(root: Path, categories: tuple[str, ...] = ("bottle", "screw"), **kw) -> Path:
    for k, cat in enumerate(categories):
        fake_mvtec_category(root / "mvtec" / cat, seed=k, **kw)
    return root / "mvtec"


def fake_oct(root: Path, n_train: int = 4, n_test: int = 3, wrapper: str = "OCT2017 ",
             seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "retinal_oct" / wrapper if wrapper else root / "retinal_oct"
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in ("CNV", "DME", "DRUSEN", "NORMAL"):
            folder = base / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                img = _normal(rng, 20) if cls == "NORMAL" else _anomalous(rng, 20)[0]
                Image.fromarray(img).save(folder / f"{cls}-{i}-1.jpeg", quality=95)
    return base


def fake_headct(root: Path, n_normal: int = 100, n_hemorrhage: int = 100, seed: int = 0) -> Path:
    """As distributed: hemorrhage ids first, header ``id, hemorrhage``."""
    rng = np.random.default_rng(seed)
    base = root / "headct"
    images = base / "head_ct" / "head_ct"
    images.mkdir(parents=True)
    lines = ["id, hemorrhage"]
    for i in range(n_normal + n_hemorrhage):
        label = int(i < n_hemorrhage)
        img = _anomalous(rng, 16)[0] if label else _normal(rng, 16)
        Image.fromarray(img).save(images / f"{i:03d}.png")
        lines.append(f"{i},{label}")
    (base / "labels.csv").write_text("\n".join(lines) + "\n")
    return base


def fake_brainmri(root: Path, n_no: int = 98, n_yes: int = 155, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "brainmri"
    for sub, n in (("no", n_no), ("yes", n_yes)):
        (base / sub).mkdir(parents=True)
        for i in range(n):
            img = _anomalous(rng, 18, 3)[0] if sub == "yes" else _normal(rng, 16)
            name = f"{sub[0].upper()}{i}" + (".jpg" if i % 3 else ".png")
            Image.fromarray(img).save(base / sub / name)
    return base
