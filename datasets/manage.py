"""What ``bench data status|fetch|verify`` do, as library calls (the CLI only prints).

Nothing downloads unless :func:`fetch` is called. torchvision sets are fetched by torchvision's
own downloader; MVTec AD, MVTec LOCO and BTAD need ``accept_license=True`` (a licence stands
before the archive) or a local ``archive``; VisA's archive is linked openly, so it downloads
without (``license_gate = False``) unless it is already there; the Kaggle sets, MPDD and
MVTec AD 2 have no direct link, so :func:`fetch` returns the manual steps unless a downloaded
``archive`` is given, or a ``url`` of their archive (with its ``sha256``). Every archive is
checked against the manifest's checksum where one is known (a mismatch rejects it) and unpacked
safely (:func:`datasets.download.extract`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError, DataCorruptError, DataMissingError, UsageError
from bench.datasets.base import DatasetProtocol
from bench.datasets.download import (
    DEFAULT_LIMITS,
    Archive,
    ExtractLimits,
    ProgressFn,
    check_file,
    download,
    extract,
    is_archive,
    url_filename,
)
from bench.datasets.stored import StoredDataset, read_stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    name: str
    state: str      # found | missing | embedded | damaged
    path: str
    counts: str
    checksum: str


def summarize_counts(counts: dict[str, int]) -> str:
    """A short text for ``bench data status``: top-level counts, or sums by the first level."""
    top = {k: v for k, v in counts.items() if "/" not in k}
    if top:
        return ", ".join(f"{k} {v}" for k, v in top.items())
    groups: dict[str, int] = defaultdict(int)
    for key, value in counts.items():
        groups[key.split("/")[0]] += value
    if len(groups) <= 4:
        return ", ".join(f"{k} {v}" for k, v in groups.items())
    kinds: dict[str, int] = defaultdict(int)
    present = {k.split("/")[0] for k, v in counts.items() if v}
    for key, value in counts.items():
        kinds[key.split("/", 1)[1]] += value
    return f"{len(present)}/{len(groups)} present; " + ", ".join(
        f"{k} {v}" for k, v in kinds.items())


def status(name: str, ds: DatasetProtocol, root: Path) -> Status:
    """Found or missing, where, how many files, and the last verification (cheap: no decoding)."""
    if ds.embedded:
        return Status(name, "embedded", "-", ds.info.size, "ships with the code")
    if not isinstance(ds, StoredDataset):  # a plugin's: it says itself whether its data is there
        where = str(ds.location(root) or "-")
        try:
            ds.check_available(root)
        except BenchError as exc:
            return Status(name, "missing", where, str(exc), "-")
        return Status(name, "found", where, ds.info.size, "no manifest: not verified")
    base = ds.find(root)
    if base is None:
        return Status(name, "missing", str(ds.location(root)), ds.fetch_hint(), "-")
    try:
        counts = summarize_counts(ds.count(base))
    except BenchError as exc:
        return Status(name, "damaged", str(base), str(exc), "-")
    stamp = read_stamp(base)
    if stamp is None:
        check = f"not verified (bench data verify {name})"
    else:
        check = f"{'ok' if stamp.get('verified') else 'FAILED'}: {stamp.get('summary', '')} " \
                f"({stamp.get('time', '?')})"
    return Status(name, "found", str(base), counts, check)


@dataclass(frozen=True)
class FetchResult:
    fetched: bool
    path: Path
    message: str


def _known_archive(ds: StoredDataset, filename: str, sha256: str | None) -> Archive:
    if sha256:
        return Archive(filename, sha256=sha256.lower())
    for archive in ds.archives():
        if archive.filename == filename:
            return archive
    return Archive(filename)


def install_archive(ds: StoredDataset, root: Path, archive_path: Path, archive: Archive,
                    limits: ExtractLimits = DEFAULT_LIMITS) -> str:
    """Check ``archive_path`` against ``archive``'s checksum, unpack it into the dataset's
    location (within ``limits``), and check that the expected layout is now there."""
    checked = check_file(archive_path, archive)
    target = ds.location(root)
    extract(archive_path, target, limits)
    if ds.find(root) is None:
        raise DataMissingError(f"{archive_path} was unpacked into {target}, but the expected "
                               f"layout {ds.layout} was not found there")
    return checked


def fetch(ds: DatasetProtocol, root: Path, *, archive: Path | None = None, url: str | None = None,
          sha256: str | None = None, accept_license: bool = False, keep_archive: bool = False,
          progress: ProgressFn | None = None, limits: ExtractLimits = DEFAULT_LIMITS,
          local: Path | None = None) -> FetchResult:
    """Obtain a dataset (see the module docstring); returns what was done or what to do.

    ``local``: a folder holding a local copy of the official files, laid out by the dataset's
    :meth:`~datasets.stored.StoredDataset.import_from` (links, decompression; no download).
    """
    if ds.embedded or not isinstance(ds, StoredDataset):
        return FetchResult(True, Path("-"), f"{ds.name} ships with the code: nothing to fetch")
    if ds.fetch_mode == "none":
        raise UsageError(f"{ds.name} holds your own images: nothing to fetch "
                         f"(put them in {ds.location(root)})")
    loc = ds.location(root)
    if local is not None:
        if archive is not None or url is not None or accept_license:
            raise UsageError("--from takes a folder of local files: not with --archive, --url "
                             "or --accept-license")
        return FetchResult(True, loc, ds.import_from(root, local))
    if archive is not None:
        checked = install_archive(ds, root, archive, _known_archive(ds, archive.name, sha256),
                                  limits)
        note = "" if "unknown" not in checked else "; the archive checksum is unknown, " \
            f"so check the counts: bench data verify {ds.name}"
        return FetchResult(True, loc, f"{ds.name}: {archive.name} {checked}, unpacked into "
                                      f"{loc}{note}")
    if ds.fetch_mode == "torchvision":
        if url is not None:
            raise UsageError(f"--url: {ds.name} is downloaded by torchvision from its own "
                             "addresses; to use a copy of yours, pass --archive FILE")
        return FetchResult(True, ds.fetch(root), f"{ds.name}: downloaded by torchvision into "
                                                 f"{loc}")
    asked = accept_license or url is not None
    if ds.fetch_mode == "archive" and not asked and ds.find(root) is not None:
        return FetchResult(True, loc, f"{ds.name} is already in {ds.find(root)}")
    # a manual dataset's archive from an address the user knows is fetched as any other
    if ((ds.fetch_mode == "archive" and (asked or not ds.license_gate))
            or (ds.fetch_mode == "manual" and url is not None)):
        known = ds.archives()[0] if ds.archives() else None
        source = url or (known.url if known else None)
        if not source:
            raise UsageError(f"{ds.name}: no archive URL is known; pass --url")
        filename = url_filename(source)
        if not is_archive(Path(filename)):
            raise UsageError(f"{source}: {filename!r} is not a .tar(.gz|.xz|.bz2) or .zip "
                             "archive; give the address of the archive file itself")
        target = _known_archive(ds, filename, sha256)
        if target.checksum is None:
            raise UsageError(f"{ds.name}: no checksum is known for {filename}; pass --sha256 so "
                             "that a corrupted download can be detected")
        dest = loc / filename
        download(source, dest, target, progress=progress)
        try:
            checked = install_archive(ds, root, dest, target, limits)
        except (DataCorruptError, DataMissingError):
            dest.unlink(missing_ok=True)
            raise
        if not keep_archive:
            dest.unlink(missing_ok=True)
        return FetchResult(True, loc, f"{ds.name}: downloaded {filename} ({checked}), unpacked "
                                      f"into {loc}")
    if ds.find(root) is not None:
        return FetchResult(True, loc, f"{ds.name} is already in {ds.find(root)}")
    return FetchResult(False, loc, ds.manual_steps(root))
