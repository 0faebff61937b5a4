"""Option types shared by every command: one rule for the numbers users type.

A float option takes a finite number only: click's ranges let ``nan`` through (every comparison
with it is false, so ``--max-ratio nan`` switched a guard off) and ``inf`` means nothing for a
limit, a timeout, a level or a fraction. Both are refused as click's own usage errors, in one
line, before the command does any work. Seeds are integers in ``[0, 2**32)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from bench.core.errors import UsageError
from bench.core.settings import SETTINGS, check_shots
from bench.run.suites import SEED_LIMIT


class FiniteFloatRange(click.FloatRange):
    """:class:`click.FloatRange` that refuses ``nan`` and ``inf`` (and ``-inf``)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def number(min: float | None = None, max: float | None = None, *, min_open: bool = False,
           max_open: bool = False) -> FiniteFloatRange:
    """The type of a float option: finite, within the bounds given."""
    return FiniteFloatRange(min=min, max=max, min_open=min_open, max_open=max_open)


#: the type of a seed option
SEED = click.IntRange(0, SEED_LIMIT - 1)

#: the type of a ``--setting`` option (repeatable where it selects)
SETTING = click.Choice(SETTINGS)


def int_list(text: str | None, option: str, check: Callable[[int, str], int]) -> list[int]:
    """``"1,2,4"`` as integers, each passed through ``check(value, option)`` (empty: [])."""
    if not text:
        return []
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{option} expects integers separated by commas, got {text!r}") from None
    return [check(v, option) for v in values]


def shots_list(text: str | None, option: str = "--shots") -> list[int]:
    """``"1,2,4"`` as the k of the few-shot setting (empty: the suite's)."""
    return int_list(text, option, check_shots)
