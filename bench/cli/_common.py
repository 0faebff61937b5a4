"""Shared CLI plumbing: settings passed between commands, and one-line errors."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console

from bench.core.errors import BenchError
from bench.core.paths import results_root
from bench.core.registry import no_imports

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


def reads_results(f: F) -> F:
    """``pass_settings`` for the commands that only read results (status, table, plot, report,
    check): within them, modules named by records or ad-hoc suite files (``module:Class``) are
    never imported (:func:`~bench.core.registry.no_imports`); such methods show by name."""

    @functools.wraps(f)
    def inert(*args: Any, **kwargs: Any) -> Any:
        with no_imports():
            return f(*args, **kwargs)

    return cast(F, pass_settings(inert))


class BenchGroup(click.Group):
    """A click group that turns :class:`BenchError` into one line and an exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Click's own usage errors (an unknown option, a bad value) as one line too."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            message = clip(" ".join(exc.format_message().split()))
            click.echo(f"bench: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("bench: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (BenchError, OSError) as exc:
            settings = ctx.find_object(Settings)
            if settings is not None and settings.debug:
                raise
            click.echo(f"bench: error: {one_line(exc)}", err=True)
            sys.exit(exc.exit_code if isinstance(exc, BenchError) else 1)


def one_line(exc: BaseException) -> str:
    """What a user reads of an error: a file system error (a folder that cannot be written, a
    full disk) as its reason and path, never a traceback."""
    if isinstance(exc, OSError) and not isinstance(exc, BenchError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return clip(f"{exc.strerror}{where}")
    return clip(str(exc) or type(exc).__name__)  # a BenchError may list details on lines below


#: the longest error message shown (a message quoting a user's huge value is cut)
MAX_MESSAGE = 4000


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text``, cut to ``limit`` characters and saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# ------------------------------------------------------------------ --suite values
def _results(ctx: click.Context) -> Path:
    settings = ctx.find_object(Settings)
    return settings.results_root if settings is not None else results_root()


def _each(value: Any, convert: Callable[[str], str]) -> Any:
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(convert(v) for v in value)
    return convert(value)


def _note_adhoc(ctx: click.Context, value: Any) -> None:
    """Say which suite ``adhoc`` stands for (on stderr: stdout may be a table)."""
    from bench.run.adhoc import ADHOC, suite_name

    if value == ADHOC or (isinstance(value, tuple) and ADHOC in value):
        click.echo(f"bench: --suite adhoc: {suite_name(ADHOC, _results(ctx))} (the latest "
                   "ad-hoc run)", err=True)


def suite_names(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``--suite`` callback of the commands that read records: a suite file's ``name``, the
    latest ad-hoc suite's for ``adhoc``, other names as given."""
    from bench.run.adhoc import suite_name  # imported when a command runs: loads the registries

    out = _each(value, lambda v: suite_name(v, _results(ctx)))
    _note_adhoc(ctx, value)
    return out


def suite_refs(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``--suite`` callback of the commands that expand a suite's jobs (status, check): a file
    or a shipped name as given, an ad-hoc suite (``adhoc``: the latest) as its stored
    definition."""
    from bench.run.adhoc import suite_ref

    out = _each(value, lambda v: suite_ref(v, _results(ctx)))
    _note_adhoc(ctx, value)
    return out
