"""Commands loaded when they are used: ``bench --help`` imports none of them (nor torch).

A :class:`LazyGroup` knows each command by name, import path and short help. ``bench --help``
lists the names with the short help given here; ``bench CMD ...`` (``--help`` included) imports
``CMD``'s module only. The short help must be the first paragraph of the command's docstring,
which click would show: a test loads every command and compares.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """A command by name, ``module:attribute`` and the short help ``bench --help`` shows."""

    name: str
    target: str
    help: str

    def short_help(self, limit: int) -> str:
        """The short help, shortened as click shortens a docstring's first paragraph."""
        return click.Command(self.name, help=self.help).get_short_help_str(limit)

    def load(self) -> click.Command:
        module, _, attr = self.target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return cmd


class LazyGroup(click.Group):
    """A click group whose commands (``commands_lazy``) are imported on first use."""

    def __init__(self, *args: Any, commands_lazy: Sequence[LazyCommand] = (),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = {c.name: c for c in commands_lazy}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, without importing the commands not loaded yet."""
        names = [n for n in self.list_commands(ctx)
                 if n in self.lazy or not self.commands[n].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, self.lazy[name].short_help(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
