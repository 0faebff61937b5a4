"""What produced a number: package versions, git commit, host, device, threads, memory."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import torch

import bench
from bench.core.errors import UsageError

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "scikit-image", "pandas")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "bench": bench.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


#: git without the locks it takes only to refresh its caches (never the index lock)
_GIT = ("git", "--no-optional-locks")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout holding this package, with ``+dirty`` for local changes."""
    return commit_of(Path(bench.__file__).resolve().parent.parent)


def commit_of(checkout: Path) -> str | None:
    """The commit of the git checkout ``checkout`` (``+dirty`` for local changes), None when it
    is not one. It never writes to the checkout: ``--no-optional-locks``, since ``git status``
    would otherwise refresh the index under ``.git/index.lock`` and fail a user's own
    ``git commit`` at that moment."""
    try:
        sha = subprocess.run([*_GIT, "rev-parse", "--short=12", "HEAD"], cwd=checkout,
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run([*_GIT, "status", "--porcelain", "--untracked-files=no"],
                               cwd=checkout, capture_output=True, text=True, timeout=10,
                               check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty.strip() else sha


def resolve_device(name: str = "auto", check_here: bool = True) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda:K`` and ``cpu`` are taken as is.

    ``check_here=False`` checks the name only (the devices are those of remote workers).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:K") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:K")
    if dev.type == "cuda" and check_here:
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r} does not exist: "
                             f"{torch.cuda.device_count()} CUDA device(s) found")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask: a Slurm allocation, ``taskset``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return cpu_model()


def host_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_cores": usable_cores(),
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


class PeakMemory:
    """Samples this process's RSS in a thread; a context manager giving the peak in MiB."""

    def __init__(self, interval: float = 0.05, device: torch.device | None = None) -> None:
        self.interval = interval
        self.device = device
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = psutil.Process()

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss / 2**20
        self.peak_rss_mb = max(self.peak_rss_mb, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._sample()
        if self.device is not None and self.device.type == "cuda":
            # a fresh worker has not touched CUDA yet: the allocator's statistics exist only
            # once CUDA is initialized ("Invalid device argument" otherwise)
            torch.cuda.init()
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self.device is not None and self.device.type == "cuda":
            self.peak_gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ------------------------------------------------------------------------- host allocator

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.lru_cache(maxsize=1)
def _glibc() -> Any:
    """glibc through ctypes, or None (another OS or C library, or turned off)."""
    if not sys.platform.startswith("linux") or os.environ.get("BENCH_RETAIN_MEMORY") == "0":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - musl and others have no mallopt
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@functools.lru_cache(maxsize=1)
def retain_freed_memory() -> bool:
    """Let glibc's malloc keep the memory torch frees, for the next allocation.

    By default glibc serves every large block (a batch of activations) with its own ``mmap``
    and unmaps it when freed, so each training step page-faults its activations in afresh: on
    the CPU at 224 px that was a third to half of MKD's cached training time (94 -> 62 ms per
    image at batch 16, 120 -> 55 ms at batch 32; `bench perf`). This turns that off (no
    ``mmap`` for large blocks, no trimming of the heap's top); results are bitwise the same.
    :func:`release_memory` gives free memory back, between jobs. Linux with glibc only;
    ``BENCH_RETAIN_MEMORY=0`` turns it off. Returns whether it is on.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0) == 1
                and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1)


def release_memory() -> None:
    """Give the host memory that is free back to the system (so that the next job's peak RSS
    is its own)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
