"""Fetching and unpacking dataset archives safely. Nothing here runs unless a user asks for it
(``bench data fetch NAME``).

- :func:`download` streams a URL into a temporary file next to the destination while hashing
  it, and moves it into place only when its checksum matches; any failure (network, size,
  checksum) deletes the temporary file, so no partial or corrupted archive is ever left behind.
- :func:`extract` unpacks ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``, ``.tar.bz2`` and ``.zip``
  after checking **every** member first: an absolute path, a ``..`` component, a symbolic or
  hard link, or a device file refuses the whole archive before anything is written. Members go
  to a staging folder beside the target and are moved in at the end, so a failure midway leaves
  the target as it was. The member list is also held to :class:`ExtractLimits` (total size,
  member count, compression ratio) before anything is written, against compression bombs.
- :func:`url_filename` names the file a download is saved as, and refuses a URL without one
  before any network access.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from bench.core.errors import DataCorruptError, DataMissingError, UsageError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One downloadable file: where it comes from and the checksum it must have.

    ``sha256`` and ``md5`` are lowercase hex digests; both ``None`` means the checksum is
    unknown (the manifest says so, and ``bench data verify`` then checks counts only).
    """

    filename: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def checksum(self) -> tuple[str, str] | None:
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, archive: Archive) -> str:
    """Raise :class:`DataCorruptError` if ``path`` does not match ``archive``'s checksum.

    Returns a short description of what was checked ("sha256 ok", or "checksum unknown").
    """
    expected = archive.checksum
    if expected is None:
        return "checksum unknown (not checked)"
    algo, digest = expected
    got = file_digest(path, algo)
    if got != digest:
        raise DataCorruptError(f"{path}: {algo} is {got}, expected {digest} (corrupted or "
                               "incomplete file; delete it and fetch again)")
    return f"{algo} ok"


def url_filename(url: str) -> str:
    """The name a download from ``url`` is saved as: the last segment of its path, decoded.

    Raises :class:`UsageError` when that is no usable file name (empty, ``.``, ``..``, or a
    segment that decodes to a path), so a bad address is refused before any network access.
    """
    name = unquote(urlparse(url).path.rpartition("/")[2])
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise UsageError(f"{url}: no file name to save the download as (the path ends in "
                         f"{name!r}); give the address of the archive file itself")
    return name


def download(url: str, dest: Path, archive: Archive, *, progress: ProgressFn | None = None,
             timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` and verify ``archive``'s checksum on the fly.

    The file is written as a hidden temporary file in ``dest``'s folder and renamed only after
    the checksum (and the size, when known) match; on any failure it is deleted and the error
    re-raised as :class:`DataMissingError` (network) or :class:`DataCorruptError` (content).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = archive.checksum
    hasher = hashlib.new(expected[0]) if expected else None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total_header = resp.headers.get("Content-Length")
                total = int(total_header) if total_header and total_header.isdigit() else None
                done = 0
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    if hasher is not None:
                        hasher.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DataMissingError(f"download of {url} failed: {exc}") from None
        if total is not None and done != total:
            raise DataCorruptError(f"download of {url} is incomplete: {done} of {total} bytes")
        if archive.size is not None and done != archive.size:
            raise DataCorruptError(f"{url}: {done} bytes, expected {archive.size}")
        if expected is not None and hasher is not None and hasher.hexdigest() != expected[1]:
            raise DataCorruptError(f"{url}: {expected[0]} is {hasher.hexdigest()}, expected "
                                   f"{expected[1]}; the download was rejected and deleted")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


# ------------------------------------------------------------------------------ extraction


@dataclass(frozen=True)
class Reachability:
    """Whether a download address answers: the HTTP status, the size it announces, or why not."""

    url: str
    status: int | None
    size: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def reachable(url: str, *, timeout: float = 15.0) -> Reachability:
    """Ask ``url`` for its headers (HEAD; a one-byte ranged GET where HEAD is refused), without
    downloading it. Redirects are followed, as a download would."""
    for method, headers in (("HEAD", {}), ("GET", {"Range": "bytes=0-0"})):
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                length = resp.headers.get("Content-Range", "").rpartition("/")[2] or \
                    resp.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
                return Reachability(url, resp.status, size)
        except urllib.error.HTTPError as exc:
            if method == "GET" or exc.code not in (403, 405, 501):  # some refuse HEAD only
                return Reachability(url, exc.code, error=f"HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return Reachability(url, None, error=f"{type(exc).__name__}: {reason}")
    raise AssertionError("unreachable")


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} bytes"


@dataclass(frozen=True)
class ExtractLimits:
    """What :func:`extract` refuses to unpack, judged from the member list before writing:
    files adding up to more than ``max_bytes``, more than ``max_members`` members, or more than
    ``max_ratio`` times the compressed size (each zip member; a tar archive as a whole).

    The defaults are far above the real datasets (the largest, MVTec AD and Retinal-OCT, unpack
    to about 6 GB each; Retinal-OCT has about 85,000 files; images hardly compress). The sizes
    are the archive's own (zip's directory, tar's headers), which the readers then hold each
    member to, so they bound what is written.
    """

    max_bytes: int = 64 * 2**30
    max_members: int = 1_000_000
    max_ratio: float = 1000.0

    def check(self, archive: Path, members: int, size: int, ratio: float = 0.0,
              what: str = "the archive") -> None:
        """Raise :class:`DataCorruptError` (one line naming the archive, the limit and the
        option that raises it) if ``members`` members of ``size`` bytes in all, the largest
        expanding ``ratio`` times (``what``), break a limit."""
        if members > self.max_members:
            over = f"it has more than {self.max_members:,} members", "--max-members"
        elif size > self.max_bytes:
            over = f"its files add up to more than {_size(self.max_bytes)}", "--max-extract-gib"
        elif ratio > self.max_ratio:
            over = (f"{what} expands {ratio:,.0f} times, more than {self.max_ratio:g} times",
                    "--max-ratio")
        else:
            return
        raise DataCorruptError(f"{archive}: refusing to unpack: {over[0]} (a compression bomb? "
                               f"raise the limit with {over[1]} if you trust the archive); "
                               "nothing was extracted")


DEFAULT_LIMITS = ExtractLimits()


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    """The member's path if it stays inside the target; raises otherwise."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataCorruptError(f"{archive}: refusing member with an absolute path: {name!r}")
    if any(part == ".." for part in posix.parts):
        raise DataCorruptError(f"{archive}: refusing member that leaves the target: {name!r}")
    return posix


def _check_tar(tf: tarfile.TarFile, archive: Path,
               limits: ExtractLimits) -> list[tarfile.TarInfo]:
    packed = max(archive.stat().st_size, 1)
    count = size = 0
    for m in tf:  # header by header, so that a limit stops the reading early
        _safe_name(m.name, archive)
        if m.issym() or m.islnk():
            raise DataCorruptError(f"{archive}: refusing link member {m.name!r} -> {m.linkname!r}")
        if not (m.isfile() or m.isdir()):
            raise DataCorruptError(f"{archive}: refusing special member {m.name!r}")
        count, size = count + 1, size + m.size
        limits.check(archive, count, size, size / packed)
    return tf.getmembers()


def _check_zip(zf: zipfile.ZipFile, archive: Path,
               limits: ExtractLimits) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for m in members:
        _safe_name(m.filename, archive)
        mode = m.external_attr >> 16
        if mode and stat.S_ISLNK(mode):
            raise DataCorruptError(f"{archive}: refusing link member {m.filename!r}")
    largest = max(members, key=lambda m: m.file_size / max(m.compress_size, 1), default=None)
    limits.check(archive, len(members), sum(m.file_size for m in members),
                 0.0 if largest is None else largest.file_size / max(largest.compress_size, 1),
                 f"member {largest.filename!r}" if largest is not None else "")
    return members


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".zip"))


def extract(archive: Path, target: Path, limits: ExtractLimits = DEFAULT_LIMITS) -> list[Path]:
    """Unpack ``archive`` into ``target`` after checking every member and the ``limits``;
    returns the top-level entries it added. Existing entries of the same name are replaced."""
    if not archive.is_file():
        raise DataMissingError(f"archive not found: {archive}")
    if not is_archive(archive):
        raise UsageError(f"{archive}: not a .tar(.gz|.xz|.bz2) or .zip archive")
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extract-"))
    try:
        if archive.name.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(zf, archive, limits)
                    zf.extractall(staging)
            except zipfile.BadZipFile as exc:
                raise DataCorruptError(f"{archive}: not a valid zip file: {exc}") from None
        else:
            try:
                with tarfile.open(archive) as tf:
                    members = _check_tar(tf, archive, limits)
                    if hasattr(tarfile, "data_filter"):  # defence in depth where available
                        tf.extractall(staging, members=members, filter="data")
                    else:  # pragma: no cover - Python without extraction filters
                        tf.extractall(staging, members=members)
            except (tarfile.TarError, EOFError) as exc:
                raise DataCorruptError(f"{archive}: not a valid tar archive: {exc}") from None
        added = []
        for entry in sorted(staging.iterdir()):
            dest = target / entry.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            os.replace(entry, dest)
            added.append(dest)
        return added
    finally:
        shutil.rmtree(staging, ignore_errors=True)
