"""A record's key: the job it records, as a small frozen dataclass with a stable id.

A job names (suite, method, overrides, dataset, task, seed) and its setting
(:mod:`bench.core.settings`: ``one-class`` by default, ``unified``, ``few-shot`` with its
``shots`` k, ``corrupted``). Workers build everything from it, so jobs pickle cheaply and run
anywhere. ``job.id`` is the first 16 hex digits of the SHA-256 of the job's canonical JSON,
identical in every process and on every machine. The canonical JSON names the setting (and
shots) only when it is not ``one-class``, so the jobs of the one-class setting keep the ids they
had before settings existed. Suites expand into jobs in :mod:`bench.run.jobs`; records are
stored under their job's id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bench.core.errors import UsageError
from bench.core.settings import DEFAULT_SETTING, FEW_SHOT, check_setting, check_shots, setting_label

#: a suite's name names its folder of records (``results/runs/<name>``): a plain name only
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_suite_name(name: str, source: str = "suite") -> str:
    """``name`` if it is a plain name (letters, digits, ``.``, ``_``, ``-``; no path separator,
    no ``..``), else a :class:`UsageError`: the name becomes a folder under the results."""
    if not SUITE_NAME.fullmatch(name) or ".." in name:
        raise UsageError(f"{source}: suite name {name!r} is not a plain name (letters, digits, "
                         "'.', '_', '-'; no '/' or '..'): it names the suite's results folder")
    return name


def freeze(value: Any) -> Any:
    """Lists become tuples (recursively) so that override values are hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def variant_label(overrides: dict[str, Any]) -> str:
    """A short human label for a job's overrides (``""`` when there are none)."""
    def fmt(v: Any) -> str:
        if isinstance(v, list):
            return "+".join(fmt(x) for x in v)
        return str(v)
    return ",".join(f"{k}={fmt(v)}" for k, v in sorted(overrides.items()))


@dataclass(frozen=True)
class Job:
    suite: str
    method: str
    dataset: str
    task: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()
    setting: str = DEFAULT_SETTING
    #: k, the training images per task of the few-shot setting (None in the others)
    shots: int | None = None

    @staticmethod
    def make(suite: str, method: str, dataset: str, task: str, seed: int,
             overrides: Mapping[str, Any] | None = None, *, setting: str = DEFAULT_SETTING,
             shots: int | None = None) -> Job:
        ov = tuple(sorted((str(k), freeze(v)) for k, v in (overrides or {}).items()))
        check_setting(setting, "job")
        if (setting == FEW_SHOT) != (shots is not None):
            raise UsageError("job: shots go with the few-shot setting, and only with it")
        k = None if shots is None else check_shots(shots, "job")
        return Job(suite, method, dataset, str(task), int(seed), ov, setting, k)

    @property
    def overrides_dict(self) -> dict[str, Any]:
        return {k: thaw(v) for k, v in self.overrides}

    def key(self) -> dict[str, Any]:
        """The canonical, JSON-ready description of the job."""
        return {
            "suite": self.suite,
            "method": self.method,
            "overrides": self.overrides_dict,
            "dataset": self.dataset,
            "task": self.task,
            "seed": self.seed,
            # absent for one-class: its jobs keep the ids of records written before settings
            **({} if self.setting == DEFAULT_SETTING else {"setting": self.setting}),
            **({} if self.shots is None else {"shots": self.shots}),
        }

    @cached_property
    def id(self) -> str:
        text = json.dumps(self.key(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @staticmethod
    def from_key(key: Mapping[str, Any]) -> Job:
        return Job.make(key["suite"], key["method"], key["dataset"], key["task"], key["seed"],
                        key.get("overrides") or {},
                        setting=key.get("setting", DEFAULT_SETTING), shots=key.get("shots"))

    @property
    def setting_label(self) -> str:
        """``one-class``, ``unified``, ``few-shot k=4``, ``corrupted``."""
        return setting_label(self.setting, self.shots)

    def label(self) -> str:
        ov = variant_label(self.overrides_dict)
        name = f"{self.method}[{ov}]" if ov else self.method
        where = "" if self.setting == DEFAULT_SETTING else f" ({self.setting_label})"
        return f"{name} {self.dataset}/{self.task} s{self.seed}{where}"
