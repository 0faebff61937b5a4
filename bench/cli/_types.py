"""Option types shared by every command: one rule for the numbers users type.

A float option takes a finite number only: click's ranges let ``nan`` through (every comparison
with it is false, so ``--max-ratio nan`` switched a guard off) and ``inf`` means nothing for a
limit, a timeout, a level or a fraction. Both are refused as click's own usage errors, in one
line, before the command does any work. Seeds are integers in ``[0, 2**32)``.
"""

from __future__ import annotations

import math
from typing import Any

import click

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
