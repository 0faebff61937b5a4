"""A perf result against a saved one: every img/s figure, slowest first.

Used by ``bench perf --compare FILE --max-slowdown F``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.core.errors import UsageError


def throughputs(result: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    """Every img/s figure of a ``perf`` result: ``(method, size, figure) -> img/s``.

    Figures: ``train`` (MKD: ``train_cache_off``, ``train_cache_on``), ``score``,
    ``localization`` and, from the batched vs per-image comparison, ``localization_batched``.
    """
    out: dict[tuple[str, str, str], float] = {}
    for method, entry in result.get("methods", {}).items():
        for size, figures in entry.get("sizes", {}).items():
            for key, value in figures.items():
                if isinstance(value, dict) and value.get("img_s"):
                    out[(method, size, key)] = float(value["img_s"])
                elif key.endswith("_img_s") and value:
                    out[(method, size, key[: -len("_img_s")])] = float(value)
        loop = entry.get("loop")
        if loop and loop.get("batched_img_s"):
            out[(method, str(loop["size"]), "localization_batched")] = float(loop["batched_img_s"])
    return out


@dataclass(frozen=True)
class SpeedChange:
    """One figure measured now against the same figure of a baseline result."""

    method: str
    size: str
    figure: str
    baseline: float
    current: float

    @property
    def ratio(self) -> float:
        """Current / baseline speed: below 1, slower."""
        return self.current / self.baseline


@dataclass(frozen=True)
class SpeedComparison:
    changes: list[SpeedChange]
    max_slowdown: float
    #: settings that differ between the two results (their figures may not be comparable)
    differences: list[str]
    #: figures of the baseline that this result lacks
    missing: list[tuple[str, str, str]]

    @property
    def regressions(self) -> list[SpeedChange]:
        return [c for c in self.changes if c.ratio < 1.0 - self.max_slowdown]

    @property
    def ok(self) -> bool:
        return not self.regressions


#: settings of a result that make its figures comparable to another's
_COMPARABLE = ("device", "device_name", "threads")
_COMPARABLE_OPTIONS = ("images", "test_images", "batch_size", "epochs", "amp", "channels_last",
                       "compile", "loop_images", "extra")


def compare_speed(current: dict[str, Any], baseline: dict[str, Any],
                  max_slowdown: float = 0.25) -> SpeedComparison:
    """Each img/s figure that both results have, slowest first relative to the baseline.

    A figure regresses when it is more than ``max_slowdown`` (a fraction) slower. Timing is
    noisy: compare results from the same machine and settings (``differences`` lists those that
    are not the same), and set the threshold above the run-to-run spread.
    """
    if not 0.0 < max_slowdown < 1.0:
        raise UsageError(f"max_slowdown is a fraction between 0 and 1, got {max_slowdown}")
    now, before = throughputs(current), throughputs(baseline)
    changes = sorted((SpeedChange(*key, baseline=before[key], current=now[key])
                      for key in before.keys() & now.keys()), key=lambda c: c.ratio)
    differences = [f"{k}: {baseline.get(k)} -> {current.get(k)}" for k in _COMPARABLE
                   if baseline.get(k) != current.get(k)]
    old_opts, new_opts = baseline.get("options", {}), current.get("options", {})
    differences += [f"{k}: {old_opts.get(k)} -> {new_opts.get(k)}" for k in _COMPARABLE_OPTIONS
                    if old_opts.get(k) != new_opts.get(k)]
    return SpeedComparison(changes=changes, max_slowdown=max_slowdown, differences=differences,
                           missing=sorted(before.keys() - now.keys()))
