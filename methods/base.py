"""The method contract, shared by every detector.

Like scikit-learn's estimators, with one difference written down everywhere:
**a higher score means more anomalous**.

- ``__init__(config)`` stores the frozen config only.
- ``fit(train, ctx)`` learns from normal images and returns ``self``; learned state ends in ``_``.
- ``score(test, ctx)`` returns :class:`Scores` (image scores, optional anomaly maps).
- ``history_`` holds per-epoch test metrics when the config asks for evaluation during training.
- Methods never print, never write outside ``ctx.cache_dir`` and never seed global RNGs: they use
  ``ctx.seed`` for their own generators.
- Every method runs in every setting (docs/settings.md): on one task's images (one-class,
  corrupted copies), on as few as one training image (few-shot, k=1), and on the union of a
  dataset's categories (unified). There a method **never learns a test image's category**: the
  data it receives is named after the dataset and its ids are anonymous; a method must not
  infer categories from names, ids or order, nor be told them in any other way.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np
import torch

from bench.core.config import Range, apply_overrides, check_fields
from bench.core.errors import ContractError
from bench.core.metrics import OWN_MAP_METRICS
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
    #: the fewest training images the method can fit (e.g. 2 for a PCA that needs a variance):
    #: a few-shot job with fewer fails in one line, and ``check_method`` draws this many
    min_shots: ClassVar[int] = 1

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
        """Identity of external weights and the checkpoint policy, stored in every record;
        optionally ``versions``, package -> version of libraries outside bench whose code makes
        the numbers (a plugin wrapping another library's models), added to the record's
        ``versions``."""
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


def declaration_problems(cls: type[Method]) -> list[str]:
    """What is wrong with what a method class declares, each in a few words (empty: nothing).

    Cheap, structural checks made when a plugin is loaded (and by
    :func:`bench.testing.check_method`): the class implements ``fit`` and ``score``; ``Config``
    is a frozen dataclass deriving from :class:`MethodConfig` whose defaults build;
    ``localizes`` is a bool; ``presets`` maps family names to config values;
    ``extra_map_protocols`` feeds metrics that take a method's own maps; ``perf_profile`` names
    config fields; ``preset`` is the base class's.
    """
    out: list[str] = []
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        out.append(f"does not implement {missing}")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, MethodConfig)
            and dataclasses.is_dataclass(config)):
        out.append("Config is not a dataclass deriving from MethodConfig")
        return out
    if not config.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        out.append("Config is not frozen (@dataclass(frozen=True, kw_only=True))")
    fields = {f.name for f in dataclasses.fields(config)}
    if not isinstance(cls.localizes, bool):
        out.append(f"localizes is {cls.localizes!r}, not True or False")
    if not isinstance(cls.min_shots, int) or isinstance(cls.min_shots, bool) or cls.min_shots < 1:
        out.append(f"min_shots is {cls.min_shots!r}, not an integer >= 1")
    if not isinstance(cls.presets, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in cls.presets.items()):
        out.append("presets is not a mapping of family name -> config values")
    else:
        for family, values in cls.presets.items():
            unknown = sorted(set(values) - fields)
            if unknown:
                out.append(f"presets[{family!r}] sets unknown field(s) {', '.join(unknown)}")
    if not isinstance(cls.extra_map_protocols, Mapping):
        out.append("extra_map_protocols is not a mapping of map name -> metric")
    else:
        bad = sorted(str(m) for m in cls.extra_map_protocols.values() if m not in OWN_MAP_METRICS)
        if bad:
            out.append(f"extra_map_protocols feeds {', '.join(bad)}; metrics that take a "
                       f"method's own maps: {', '.join(OWN_MAP_METRICS)}")
    profile = cls.perf_profile
    if not isinstance(profile, PerfProfile):
        out.append("perf_profile is not a PerfProfile")
    else:
        unknown = sorted((set(profile.flags) | set(profile.offline)) - fields)
        if unknown:
            out.append(f"perf_profile names unknown config field(s) {', '.join(unknown)}")
    if getattr(cls.preset, "__func__", None) is not Method.preset.__func__:  # type: ignore[attr-defined]
        out.append("overrides preset(): declare the presets table instead")
    return out


def as_method_spec(name: str, obj: object) -> MethodSpec:
    """The :class:`MethodSpec` a plugin provides under ``name``: a :class:`Method` subclass (its
    defaults, the first line of its docstring as summary) or a :class:`MethodSpec` (a variant,
    with its own summary and ``test_overrides``). Raises
    :class:`~bench.core.errors.ContractError` (or ``UsageError``) naming what breaks the
    contract."""
    if isinstance(obj, MethodSpec):
        spec = dataclasses.replace(obj, name=name)
    elif isinstance(obj, type) and issubclass(obj, Method):
        doc = (inspect.getdoc(obj) or "").strip().splitlines()
        spec = MethodSpec(name=name, cls=obj, defaults={}, summary=doc[0] if doc else "")
    else:
        what = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        raise ContractError(f"{what} is neither a Method subclass nor a MethodSpec "
                        "(bench.methods.base)")
    problems = declaration_problems(spec.cls)
    if problems:
        raise ContractError("; ".join(problems))
    spec.config()  # the defaults, the presets and the test settings are valid configs
    for family in spec.cls.presets:
        spec.config("" if family == ANY_FAMILY else family)
    spec.config(overrides=spec.test_overrides)
    return spec
