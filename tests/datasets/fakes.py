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


# ------------------------------------------------------------------- industrial category sets


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def fake_visa(root: Path, categories: tuple[str, ...] = ("candle", "pcb1"), *, n_train: int = 5,
              n_good: int = 2, n_bad: int = 2, size: int = 24, seed: int = 0,
              wrapper: str = "") -> Path:
    """``split_csv/1cls.csv`` and ``<object>/Data/{Images/{Normal,Anomaly}/*.JPG,
    Masks/Anomaly/*.png}``; masks hold a class number (1, 2, ...) per defect pixel, as VisA's."""
    rng = np.random.default_rng(seed)
    base = root / "visa" / wrapper if wrapper else root / "visa"
    lines = ["object,split,label,image,mask"]
    for cat in categories:
        for i in range(n_train + n_good):
            rel = f"{cat}/Data/Images/Normal/{i:04d}.JPG"
            _save(_normal(rng, size, 3), base / rel)
            lines.append(f"{cat},{'train' if i < n_train else 'test'},normal,{rel},")
        for i in range(n_bad):
            img, mask = _anomalous(rng, size, 3)
            rel = f"{cat}/Data/Images/Anomaly/{i:03d}.JPG"
            mrel = f"{cat}/Data/Masks/Anomaly/{i:03d}.png"
            _save(img, base / rel)
            _save((mask > 0).astype(np.uint8) * (1 + i % 3), base / mrel)
            lines.append(f"{cat},test,anomaly,{rel},{mrel}")
    (base / "split_csv").mkdir(parents=True)
    (base / "split_csv" / "1cls.csv").write_text("\n".join(lines) + "\n")
    return base


def fake_btad(root: Path, categories: tuple[str, ...] = ("01", "03"), *, n_train: int = 5,
              n_good: int = 2, n_bad: int = 2, size: int = 24, seed: int = 0,
              wrapper: str = "BTech_Dataset_transformed") -> Path:
    """``<product>/{train/ok, test/{ok,ko}, ground_truth/ko}``: product ``01`` as BMP images with
    PNG masks, the others as PNG images with BMP masks; a mask has its image's stem."""
    rng = np.random.default_rng(seed)
    base = root / "btad" / wrapper if wrapper else root / "btad"
    for cat in categories:
        ext, mext = (".bmp", ".png") if cat == "01" else (".png", ".bmp")
        for i in range(n_train):
            _save(_normal(rng, size, 3), base / cat / "train" / "ok" / f"{i:04d}{ext}")
        for i in range(n_good):
            _save(_normal(rng, size, 3), base / cat / "test" / "ok" / f"{i:04d}{ext}")
        for i in range(n_bad):
            img, mask = _anomalous(rng, size, 3)
            _save(img, base / cat / "test" / "ko" / f"{i:04d}{ext}")
            _save(mask, base / cat / "ground_truth" / "ko" / f"{i:04d}{mext}")
    return base


def fake_mvtec_ad2(root: Path, categories: tuple[str, ...] = ("can", "vial"), *, n_train: int = 5,
                   n_val: int = 2, n_good: int = 2, n_bad: int = 2, size: int = 24,
                   seed: int = 0) -> Path:
    """``<category>/{train/good, validation/good, test_public/{good,bad,ground_truth/bad}}`` and
    an unlabelled ``test_private`` folder."""
    rng = np.random.default_rng(seed)
    base = root / "mvtec_ad2"
    for cat in categories:
        for sub, n in (("train/good", n_train), ("validation/good", n_val),
                       ("test_public/good", n_good), ("test_private", 2)):
            for i in range(n):
                _save(_normal(rng, size, 3), base / cat / sub / f"{i:03d}_regular.png")
        for i in range(n_bad):
            img, mask = _anomalous(rng, size, 3)
            _save(img, base / cat / "test_public" / "bad" / f"{i:03d}_overexposed.png")
            _save(mask, base / cat / "test_public" / "ground_truth" / "bad"
                  / f"{i:03d}_overexposed_mask.png")
    return base


def fake_mvtec_loco(root: Path, categories: tuple[str, ...] = ("pushpins",), *, n_train: int = 5,
                    n_val: int = 2, n_good: int = 2, n_logical: int = 2, n_structural: int = 1,
                    size: int = 24, seed: int = 0) -> Path:
    """``<category>/{train/good, validation/good, test/<good|logical_anomalies|
    structural_anomalies>, ground_truth/<type>/<stem>/000.png}``; logical anomalies get two
    masks each, as some of LOCO's do."""
    rng = np.random.default_rng(seed)
    base = root / "mvtec_loco"
    for cat in categories:
        for sub, n in (("train/good", n_train), ("validation/good", n_val),
                       ("test/good", n_good)):
            for i in range(n):
                _save(_normal(rng, size, 3), base / cat / sub / f"{i:03d}.png")
        for kind, n, n_masks in (("logical_anomalies", n_logical, 2),
                                 ("structural_anomalies", n_structural, 1)):
            for i in range(n):
                img, mask = _anomalous(rng, size, 3)
                _save(img, base / cat / "test" / kind / f"{i:03d}.png")
                for k in range(n_masks):
                    _save(mask, base / cat / "ground_truth" / kind / f"{i:03d}" / f"{k:03d}.png")
    return base
