"""Shared CLI plumbing: settings passed between commands, and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from bench.core.errors import BenchError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Settings:
    results_root: Path
    data_root: Path
    debug: bool = False
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=False))
    err: Console = field(default_factory=lambda: Console(stderr=True))


pass_settings = click.make_pass_decorator(Settings)


class BenchGroup(click.Group):
    """A click group that turns :class:`BenchError` into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            settings = ctx.find_object(Settings)
            if settings is not None and settings.debug:
                raise
            click.echo(f"bench: error: {exc}", err=True)
            sys.exit(exc.exit_code)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
