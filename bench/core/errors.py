"""Errors a user can cause. The CLI shows them as one line, never as a traceback."""

from __future__ import annotations


class BenchError(Exception):
    """Base class for errors caused by input, data or environment (exit code 1)."""

    exit_code = 1


class UsageError(BenchError):
    """A bad name, option or override given by the user (exit code 2)."""

    exit_code = 2


class DataMissingError(BenchError):
    """A dataset, split or file is not where it is expected."""


class DataCorruptError(BenchError):
    """A file exists but cannot be read or fails its checksum."""


class MissingDependency(BenchError):
    """A plugin needs a package that is not installed (an optional extra); the message says
    which and how to install it, in one line. A plugin raises it while it loads: the registry
    then leaves its names out quietly (``bench list`` gives one hint, not one warning per name)
    and a run that names them stops with this line."""


class ContractError(TypeError):
    """A method or dataset (a plugin's) that breaks its contract; the message says how."""
