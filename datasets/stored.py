"""Datasets stored under the data root: where they live, whether they are there, how to get them,
and how to check them against the manifest shipped with the package.

Every on-disk dataset lives in ``<data-root>/<name>`` (one data root per machine: ``--data-root``,
``$BENCH_DATA_ROOT`` or ``~/.cache/bench/data``). Its manifest, ``datasets/manifests/<name>.json``,
records the official file counts (``null`` where no source confirmed a number: those are
reported as unknown, never guessed) and the archives with their checksums (``null`` where the
checksum is unknown: verification then checks counts only, and says so).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from bench.core.errors import DataCorruptError, DataMissingError, UsageError
from bench.core.paths import data_root
from bench.datasets._loading import find_base
from bench.datasets.base import DatasetProtocol
from bench.datasets.download import Archive, check_file

STAMP = ".bench-verify.json"


@cache
def manifest(name: str) -> dict[str, Any]:
    """The manifest shipped for dataset ``name`` (an empty one if none is shipped)."""
    ref = resources.files("bench.datasets").joinpath("manifests").joinpath(f"{name}.json")
    if not ref.is_file():
        return {"name": name, "counts": {}, "archives": []}
    return dict(json.loads(ref.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Check:
    """One line of a verification: what was checked, what was expected and found, the state."""

    item: str
    expected: str
    found: str
    #: ok | mismatch | missing | unknown | recompressed (an archive of other bytes than the
    #: official one whose content is the file that is read: the content checks stand in)
    state: str

    @property
    def failed(self) -> bool:
        return self.state in ("mismatch", "missing")


@dataclass
class Report:
    """The result of ``bench data verify NAME``."""

    dataset: str
    path: Path
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    def summary(self) -> str:
        n_fail = sum(c.failed for c in self.checks)
        n_unknown = sum(c.state == "unknown" for c in self.checks)
        n_repacked = sum(c.state == "recompressed" for c in self.checks)
        state = "ok" if self.ok else f"{n_fail} problem(s)"
        return (state + (f", {n_unknown} unchecked (unknown)" if n_unknown else "")
                + (f", {n_repacked} archive(s) recompressed (content checked instead)"
                   if n_repacked else ""))


class StoredDataset(DatasetProtocol):
    """Base of the datasets that live under the data root.

    Subclasses set ``layout`` (the expected tree, for messages), implement :meth:`accepts`
    (is this folder the dataset's base?) and :meth:`count` (file counts keyed like the
    manifest), and say how the data is obtained (``fetch_mode``).
    """

    layout: ClassVar[str]
    #: "torchvision" (torchvision downloads it), "archive" (a direct archive URL with a known
    #: checksum exists, behind a licence to accept) or "manual" (a login is needed)
    fetch_mode: ClassVar[str] = "manual"
    #: an "archive" dataset downloads only with ``--accept-license`` (a licence form stands
    #: before the archive); False where the distributor links the archive openly
    license_gate: ClassVar[bool] = True

    # --------------------------------------------------------------------------- location

    def location(self, root: Path | None) -> Path:
        return Path(root if root is not None else data_root()) / self.name

    def accepts(self, folder: Path) -> bool:
        """Whether ``folder`` holds the dataset's layout."""
        raise NotImplementedError

    def find(self, root: Path | None) -> Path | None:
        """The folder holding the layout: the location itself or a wrapper folder inside it."""
        return find_base(self.location(root), self.accepts)

    def fetch_hint(self) -> str:
        if self.fetch_mode == "torchvision":
            return f"run: bench data fetch {self.name}"
        return f"see the download steps: bench data fetch {self.name}"

    def missing_message(self, root: Path | None) -> str:
        loc = self.location(root)
        return f"{self.name} not found: expected {loc}/{self.layout}; {self.fetch_hint()}"

    def require(self, root: Path | None) -> Path:
        base = self.find(root)
        if base is None:
            raise DataMissingError(self.missing_message(root))
        return base

    def check_available(self, root: Path | None) -> None:
        self.require(root)

    def cache_dir(self, root: Path | None) -> Path:
        return Path(root if root is not None else data_root()) / ".cache" / "tensors" / self.name

    # --------------------------------------------------------------------------- checking

    def count(self, base: Path) -> dict[str, int]:
        """File counts keyed like the manifest's ``counts``; cheap (no image decoding)."""
        raise NotImplementedError

    def archives(self) -> list[Archive]:
        return [Archive(**a) for a in manifest(self.name).get("archives", [])]

    def download_urls(self) -> list[str]:
        """Every address ``bench data fetch`` downloads this dataset from (mirrors included)."""
        return [a.url for a in self.archives() if a.url]

    def checksum_checks(self, base: Path) -> list[Check]:
        """Checksums of files on disk, where the dataset has per-file checksums."""
        return []

    def content_checks(self, base: Path) -> list[Check]:
        """Checks of the files' content beyond the counts (headers, shapes), where defined."""
        return []

    def import_from(self, root: Path | None, folder: Path) -> str:
        """Lay out a local copy of the official files in ``folder`` under the data root
        (``bench data fetch NAME --from DIR``); returns what was done."""
        raise UsageError(f"{self.name}: --from is not supported for this dataset; unpack its "
                         f"archive with: bench data fetch {self.name} --archive FILE")

    def fetch(self, root: Path | None) -> Path:
        """Download the data directly (only where no login or licence is in the way)."""
        raise DataMissingError(f"{self.name} cannot be downloaded directly; "
                               f"{self.manual_steps(root)}")

    def manual_steps(self, root: Path | None) -> str:
        """How to obtain the data by hand (printed by ``bench data fetch``)."""
        return self.info.obtain

    def verify(self, root: Path | None) -> Report:
        """Counts (and checksums where known) against the manifest; writes a stamp."""
        base = self.require(root)
        report = Report(self.name, base)
        expected: dict[str, int | None] = manifest(self.name).get("counts", {})
        found = self.count(base)
        for key, want in expected.items():
            got = found.get(key)
            if want is None:
                report.checks.append(Check(key, "unknown", str(got if got is not None else 0),
                                           "unknown"))
            elif not got and want:
                report.checks.append(Check(key, str(want), "0", "missing"))
            else:
                report.checks.append(Check(key, str(want), str(got),
                                           "ok" if got == want else "mismatch"))
        if not expected:
            report.notes.append("no manifest ships for this dataset: nothing to compare")
        content = self.content_checks(base)
        report.checks.extend(content)
        sums = self.checksum_checks(base)
        report.checks.extend(sums)
        if not sums:
            report.notes.append("no per-file checksums for this layout: counts checked only")
        repacked = [c.item for c in sums if c.state == "recompressed"]
        if repacked:
            counted = [c for c in report.checks if c not in sums]
            passed = bool(counted) and not any(c.failed or c.state == "unknown" for c in counted)
            report.notes.append(
                f"{len(repacked)} archive(s) are not the official bytes but decompress to the "
                "files that are read (a recompressed copy, e.g. a distribution's package): "
                "the official checksums cannot confirm them, so the content was checked "
                + ("instead, and every count, per-class count and shape check passed"
                   if passed else "instead, and NOT every content check passed (see above)"))
        write_stamp(base, {"verified": report.ok, "summary": report.summary()})
        return report


def write_stamp(base: Path, info: dict[str, Any]) -> None:
    """Record the last verification in ``<base>/.bench-verify.json`` (best effort)."""
    info = {**info, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with contextlib.suppress(OSError):
        (base / STAMP).write_text(json.dumps(info, indent=1), encoding="utf-8")


def read_stamp(base: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((base / STAMP).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def checksum_check(path: Path, archive: Archive, absent: tuple[str, str]) -> Check:
    """Check one file against ``archive``'s checksum; ``absent`` = (found text, state) to report
    when the file is not there."""
    want = archive.checksum
    expected = f"{want[0]} {want[1]}" if want else "unknown"
    if not path.is_file():
        return Check(archive.filename, expected, absent[0], absent[1])
    if want is None:
        return Check(archive.filename, expected, "present", "unknown")
    try:
        return Check(archive.filename, expected, check_file(path, archive), "ok")
    except DataCorruptError:
        return Check(archive.filename, expected, f"different {want[0]}", "mismatch")
