"""Test-only methods for the runner tests, and a runner script to start in subprocesses.

Nothing here is registered on import: tests register what they need (and unregister it), and
the script registers them in its own process.

- ``probe``: the one-class SVM, plus a log line per finished fit in ``ctx.cache_dir`` (to count
  how often each job ran), an optional sleep, and optional failures
  (``fail=oom|memory|alloc|kill``; ``kill`` only in a job process of its own), and an optional
  warning (``warn=TEXT``, as torch gives for an op without a deterministic kernel).
- ``tinynet``: a small torch autoencoder trained with shuffled mini-batches, dropout and random
  initialisation from the global generators, so that only the runner's seeding makes it
  repeatable; it saves its scores in ``ctx.cache_dir``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.datasets.base import TaskData
from bench.methods.base import Method, MethodConfig, RunContext, Scores
from bench.methods.classic import OCSVMConfig, OneClassSVMDetector


@dataclass(frozen=True, kw_only=True)
class ProbeConfig(OCSVMConfig):
    sleep: float = 0.0
    fail: str = ""
    warn: str = ""


class Probe(OneClassSVMDetector):
    Config = ProbeConfig  # type: ignore[assignment]
    config: ProbeConfig  # type: ignore[assignment]

    def fit(self, train: TaskData, ctx: RunContext) -> Probe:
        assert ctx.cache_dir is not None
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        with (ctx.cache_dir / "started.log").open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        if self.config.fail == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        if self.config.fail == "memory":
            raise MemoryError()
        if self.config.fail == "alloc":  # a real allocation far beyond any machine
            torch.empty(1 << 45, device=ctx.device)
        if self.config.fail == "kill":  # as the kernel's out-of-memory killer would
            os.kill(os.getpid(), signal.SIGKILL)
        if self.config.warn:
            warnings.warn(self.config.warn, UserWarning, stacklevel=1)
        time.sleep(self.config.sleep)
        super().fit(train, ctx)
        with (ctx.cache_dir / "fits.log").open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        return self


def fits(results: Path, job_id: str, name: str = "fits.log") -> list[str]:
    """The pids that finished (or, with ``started.log``, began) fitting ``job_id``."""
    path = results / "cache" / job_id / name
    return path.read_text().split() if path.exists() else []


@dataclass(frozen=True, kw_only=True)
class TinyNetConfig(MethodConfig):
    epochs: int = 3
    hidden: int = 16


class TinyNet(Method):
    Config = TinyNetConfig
    config: TinyNetConfig

    def fit(self, train: TaskData, ctx: RunContext) -> TinyNet:
        x = train.images.flatten(1).float() / 255.0
        d = x.shape[1]
        h = self.config.hidden
        self.net_ = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(),
                                        torch.nn.Dropout(0.2), torch.nn.Linear(h, d))
        self.net_.to(ctx.device)
        x = x.to(ctx.device)
        opt = torch.optim.Adam(self.net_.parameters(), lr=1e-2)
        for epoch in range(self.config.epochs):
            for idx in torch.randperm(len(x)).split(16):  # global generator: seeded by the runner
                opt.zero_grad()
                loss = ((self.net_(x[idx]) - x[idx]) ** 2).mean()
                loss.backward()
                opt.step()
            ctx.report(epoch + 1, self.config.epochs)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        x = test.images.flatten(1).float().to(ctx.device) / 255.0
        self.net_.eval()
        with torch.no_grad():
            image = ((self.net_(x) - x) ** 2).mean(1).cpu().numpy().astype(np.float64)
        assert ctx.cache_dir is not None
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(ctx.cache_dir / "scores.npy", image)
        return Scores(image=image)


def register_all() -> None:
    from bench.methods import register

    register("probe", Probe, "test only: ocsvm that logs, sleeps or fails")
    register("tinynet", TinyNet, "test only: tiny autoencoder trained with shuffling")


def main() -> None:
    """``python -m tests._jobs RESULTS TASK... [--sleep S] [--barrier DIR] [--timeout S]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--sleep-task", default=None, help="sleep on this task only")
    parser.add_argument("--barrier", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args()

    from bench.run.jobs import Job
    from bench.run.runner import RunOptions, run

    register_all()
    jobs = [Job.make("t", "probe", "digits", t, 0,
                     {"sleep": args.sleep} if args.sleep_task in (None, t) else {})
            for t in args.tasks]
    if args.barrier is not None:  # start together with the other runner
        (args.barrier / f"ready.{os.getpid()}").touch()
        while not (args.barrier / "go").exists():
            time.sleep(0.02)
    report = run(jobs, RunOptions(results_root=args.results, timeout=args.timeout), quiet=True)
    print(f"ran={len(report.results)} claimed={len(report.skipped_running)} "
          f"done={len(report.skipped_ok)}", flush=True)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
