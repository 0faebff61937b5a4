"""Laying out a local copy of a dataset's official files under the data root
(``bench data fetch NAME --from DIR``), copying as little as possible.

- A file the loader reads as it is (an extracted idx file, a CIFAR batch) is **symbolically
  linked** to the copy in ``DIR`` (absolute link target): nothing is copied, and the copy must
  stay where it is.
- A ``.gz`` idx file is linked too (so that ``bench data verify`` can check the archive) and
  **decompressed** next to it, because torchvision reads the extracted files only.
- A ``.tar.gz`` archive (CIFAR-10) is unpacked with :func:`datasets.download.extract` (every member
  checked first).

A file already at a destination is replaced (atomically: temporary file, then ``os.replace``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from bench.core.errors import DataCorruptError
from bench.datasets.download import CHUNK, DEFAULT_LIMITS

GZ_ERRORS = (OSError, EOFError, zlib.error)


def find_file(folder: Path, name: str, subfolders: Iterable[str] = ("",)) -> Path | None:
    """``folder/<sub>/name`` for the first ``sub`` where it is a file, else None."""
    for sub in subfolders:
        path = folder / sub / name
        if path.is_file():
            return path
    return None


def link(source: Path, dest: Path) -> None:
    """Make ``dest`` a symbolic link to ``source`` (absolute), replacing what is there."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = source.resolve()
    if dest.is_symlink() and Path(os.readlink(dest)) == target:
        return
    tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, dest)


def gunzip(source: Path, dest: Path, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> None:
    """Decompress ``source`` into ``dest`` (at most ``max_bytes``, against compression bombs)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    tmp = Path(tmp_name)
    try:
        written = 0
        with os.fdopen(fd, "wb") as out, gzip.open(source, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                written += len(block)
                if written > max_bytes:
                    raise DataCorruptError(f"{source}: decompresses to more than "
                                           f"{max_bytes / 2**30:.1f} GiB: refused")
                out.write(block)
        tmp.chmod(0o644)  # mkstemp's 0600 would hide the data from other users
        os.replace(tmp, dest)
    except GZ_ERRORS as exc:
        raise DataCorruptError(f"{source}: not a valid gzip file: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _digest(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for block in chunks:
        h.update(block)
    return h.hexdigest()


def gz_content_equals(packed: Path, plain: Path) -> bool | None:
    """Whether ``packed`` decompresses to exactly the bytes of ``plain``; None if ``packed`` is
    not a readable gzip file."""
    try:
        with gzip.open(packed, "rb") as fh:
            inner = _digest(iter(lambda: fh.read(CHUNK), b""))
    except GZ_ERRORS:
        return None
    with open(plain, "rb") as fh:
        return inner == _digest(iter(lambda: fh.read(CHUNK), b""))
