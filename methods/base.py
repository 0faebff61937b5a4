"""The method contract, shared by every detector.

Like scikit-learn's estimators, with one difference written down everywhere:
**a higher score means more anomalous**.

- ``__init__(config)`` stores the frozen config only.
- ``fit(train, ctx)`` learns from normal images and returns ``self``; learned state ends in ``_``.
- ``score(test, ctx)`` returns :class:`Scores` (image scores, optional anomaly maps).
- ``history_`` holds per-epoch test metrics when the config asks for evaluation during training.
- Methods never print, never write outside ``ctx.cache_dir`` and never seed global RNGs: they use
  ``ctx.seed`` for their own generators.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np
import torch

from bench.core.config import Range, apply_overrides, check_fields
from bench.datasets.base import InputSpec, TaskData

M = TypeVar("M", bound="Method")

#: the key of :attr:`Method.presets` that applies to every family without an entry of its own
ANY_FAMILY = "*"


@dataclass(frozen=True, kw_only=True)
class MethodConfig:
    """Base config. ``image_size=None`` uses the dataset's default size.

    What a field allows beyond its type is declared on it (``Annotated[float, Range(gt=0)]``,
    the aliases of :mod:`bench.core.config` such as ``PositiveInt``) and checked here, whenever a
    config is built; a subclass's ``__post_init__`` calls this one first, then checks what its
    fields allow together with :func:`~bench.core.config.require`.
    """

    image_size: Annotated[int | None, Range(ge=8)] = None

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class Scores:
    """What ``score`` returns: ``image`` [N] and optionally ``maps`` [N, H, W].

    ``extra_maps`` holds alternative maps for metrics that need another post-processing (for
    instance MKD's per-image normalized maps for the official code's localization protocol); the
    method declares which metric each feeds in :attr:`Method.extra_map_protocols`.
    """

    image: np.ndarray
    maps: np.ndarray | None = None
    extra_maps: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class PerfProfile:
    """How ``bench perf`` runs a method, declared by the method so that perf names none.

    Attributes:
        train_variants: the fits to time, figure name -> config overrides: one plain fit, or
            several when a switch is worth comparing (MKD: its expert cache off and on).
        speedups: figure name -> (variant, baseline variant), the ratio of their img/s.
        flags: the speed switches of ``bench perf`` (``amp``, ``channels_last``, ``compile``)
            that the config has as fields of the same name.
        offline: config values that run the method on perf's synthetic images without a
            download (random weights) and at the size asked (no centre crop).
        reference_loop: name of a method ``(data) -> (scores, maps)`` that localizes as the
            original code does, one image at a time; timed against the batched ``score``.
    """

    train_variants: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: {"train": {}})
    speedups: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    offline: Mapping[str, Any] = field(default_factory=dict)
    reference_loop: str | None = None


ProgressFn = Callable[[int, int], None]
EvaluateFn = Callable[[TaskData, Scores], dict[str, float]]


@dataclass
class RunContext:
    """What the runner hands a method: device, seed, callbacks and a cache folder."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    cache_dir: Path | None = None
    family: str = ""
    progress: ProgressFn | None = None
    eval_data: TaskData | None = None
    evaluate: EvaluateFn | None = None
    deterministic: bool = False

    def report(self, done: int, total: int) -> None:
        """Report training progress (for example epochs done out of total)."""
        if self.progress is not None:
            self.progress(done, total)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU torch generator seeded from the job seed (``offset`` separates streams)."""
        return torch.Generator().manual_seed(int(self.seed) * 1_000_003 + offset)

    def rng(self, offset: int = 0) -> np.random.Generator:
        return np.random.default_rng([int(self.seed), offset])


class Method(abc.ABC):
    """Base class of every detector. See the module docstring for the contract."""

    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: whether ``score`` returns anomaly maps
    localizes: ClassVar[bool] = False
    #: config values per dataset family (e.g. MKD's per-dataset λ and epochs), one table per
    #: method so that a family's settings are read in one place; :data:`ANY_FAMILY` covers the
    #: families without an entry (the empty family included)
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: name in ``Scores.extra_maps`` -> the metric those maps feed (one of
    #: :data:`bench.core.metrics.OWN_MAP_METRICS`), which otherwise normalizes the standard maps
    #: itself; the harness reads this instead of knowing any method's maps
    extra_map_protocols: ClassVar[Mapping[str, str]] = {}
    #: how ``bench perf`` runs the method
    perf_profile: ClassVar[PerfProfile] = PerfProfile()

    def __init__(self, config: MethodConfig) -> None:
        self.config = config
        self.history_: list[dict[str, float]] = []

    @classmethod
    def preset(cls, family: str) -> dict[str, Any]:
        """The config values of :attr:`presets` for ``family`` (a copy: callers may change it)."""
        return dict(cls.presets.get(family, cls.presets.get(ANY_FAMILY, {})))

    @classmethod
    def check_config(cls, config: MethodConfig) -> None:
        """Raise :class:`~bench.core.errors.UsageError` for a config that cannot run at all (checked
        for every job before a suite starts, so a grid does not fail job after job).

        What one field allows is declared on the field and checked when the config is built;
        this is for the rest, e.g. a value that may be unset in a config but not when it runs
        (weights)."""
        return None

    def input_spec(self) -> InputSpec:
        cfg = self.config
        return InputSpec(
            size=cfg.image_size,
            crop=getattr(cfg, "crop", None),
            interpolation=getattr(cfg, "interpolation", "bilinear"),
        )

    def provenance(self) -> dict[str, Any]:
        """Identity of external weights and the checkpoint policy, stored in every record."""
        return {"expert": None, "checkpoint_policy": "final"}

    def fit_info(self) -> dict[str, float]:
        """Figures of the last ``fit`` that ``bench perf`` reports beside its timing (e.g. how
        much of MKD's expert cache was filled); none by default."""
        return {}

    @abc.abstractmethod
    def fit(self: M, train: TaskData, ctx: RunContext) -> M:
        """Learn from normal training images; returns ``self``."""

    @abc.abstractmethod
    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        """Anomaly scores (higher = more anomalous) for every test image."""


@dataclass(frozen=True)
class MethodSpec:
    """A registered name: a method class plus the config values that make the variant."""

    name: str
    cls: type[Method]
    defaults: Mapping[str, Any]
    summary: str
    #: small settings that make the variant fast enough for the contract tests
    test_overrides: Mapping[str, Any] = field(default_factory=dict)

    def config(self, family: str = "", overrides: Mapping[str, Any] | None = None) -> MethodConfig:
        """Resolve: class defaults < dataset preset < variant defaults < user overrides."""
        cfg = self.cls.Config()
        cfg = apply_overrides(cfg, self.cls.preset(family))
        cfg = apply_overrides(cfg, self.defaults)
        return apply_overrides(cfg, overrides or {})

    def checked_config(self, family: str = "",
                       overrides: Mapping[str, Any] | None = None) -> MethodConfig:
        """:meth:`config`, then the class's :meth:`Method.check_config`."""
        cfg = self.config(family, overrides)
        self.cls.check_config(cfg)
        return cfg

    def build(self, family: str = "", overrides: Mapping[str, Any] | None = None) -> Method:
        return self.cls(self.config(family, overrides))

    def fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.cls.Config)]
