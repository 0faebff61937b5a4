"""A small name -> object registry (in the spirit of fvcore's ``Registry``), open to plugins.

Two instances exist: :data:`bench.methods.METHODS` and :data:`bench.datasets.DATASETS`. The
built-in names are registered through explicit imports in the packages' ``__init__`` modules.
Two more sources, both resolved lazily (on the first lookup that needs them, in every process,
worker processes included):

- **entry points**: installed distributions that declare the registry's group
  (``[project.entry-points."bench.methods"]``, ``"bench.datasets"``) add one name per entry
  point; :meth:`Registry.names` lists them beside the built-in ones;
- **import names**: ``package.module:Class`` names code that is not packaged yet; it is imported
  (with the current folder on the path) the first time it is looked up, and never listed.

A plugin whose optional dependency is not installed raises
:class:`~bench.core.errors.MissingDependency` while it loads: it is left out quietly
(:attr:`PluginError.missing`), and looking its name up raises that line. A plugin that cannot be
imported, breaks the contract (the registry's ``adapt`` function says
why) or reuses a taken name is left out with one line saying so (:meth:`Registry.plugin_errors`);
looking its name up raises that line as a :class:`UsageError`. What came from a plugin keeps its
:class:`Origin` (distribution and version), which records store.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.core.errors import ContractError, MissingDependency, UsageError

T = TypeVar("T")
log = logging.getLogger(__name__)

_IDENT = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
#: ``package.module:Class`` (the attribute may be dotted: ``module:Outer.Inner``)
IMPORT_NAME = re.compile(rf"{_IDENT}:{_IDENT}")
#: what an entry point may be called (the name becomes a method or dataset name in suites)
PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_import_name(name: str) -> bool:
    """Whether ``name`` reads as ``package.module:Class``."""
    return IMPORT_NAME.fullmatch(name) is not None


_imports_off = 0


@contextlib.contextmanager
def no_imports() -> Generator[None, None, None]:
    """Within: import names are never imported (looking one up raises :class:`UsageError`).

    The commands that only read results use it: a record or an ad-hoc suite file naming
    ``module:Class`` must not run that module's code when someone looks at the results; such a
    method is shown by its name. (Installed entry-point plugins still load.)"""
    global _imports_off
    _imports_off += 1
    try:
        yield
    finally:
        _imports_off -= 1


def imports_allowed() -> bool:
    """False within :func:`no_imports`."""
    return _imports_off == 0


@dataclass(frozen=True)
class Origin:
    """Where a registered object comes from when it is not built in.

    Attributes:
        object: what was imported, ``package.module:Class``.
        distribution: the installed distribution that provides it (None: not installed, e.g.
            a module in the current folder).
        version: that distribution's version.
        group: the entry-point group it was declared in (None: named by its import path).
    """

    object: str
    distribution: str | None = None
    version: str | None = None
    group: str | None = None

    def as_record(self) -> dict[str, str | None]:
        """What a record stores (``plugin``, ``dataset_plugin``)."""
        return {"distribution": self.distribution, "version": self.version,
                "object": self.object}

    def label(self) -> str:
        """``bench-plugin-example 0.1.0``, or the import path when not installed."""
        if self.distribution is None:
            return self.object
        return f"{self.distribution} {self.version}" if self.version else self.distribution


@dataclass(frozen=True)
class PluginError:
    """A plugin left out of a registry, and why (``message`` is one line naming it)."""

    name: str
    message: str
    #: the plugin raised :class:`~bench.core.errors.MissingDependency` while loading: an
    #: optional dependency is not installed (its message, the install hint); nothing is broken
    missing: str | None = None


Adapt = Callable[[str, Any], Any]
#: what loading a plugin may raise that leaves it out with a reason: any error, and a module
#: that calls ``sys.exit()`` while it is imported (it must not end bench without a word)
_PLUGIN_FAILURES = (Exception, SystemExit)


class Registry(Generic[T]):
    """Maps names to objects; a duplicate name raises, an unknown name lists the known ones.

    Args:
        kind: what the objects are, in messages (``method``, ``dataset``).
        group: the entry-point group plugins declare (None: no plugins).
        adapt: ``(name, loaded object) -> registered object``; raises (any exception, its
            message the reason) when the object breaks the contract. Used for entry points and
            import names; the identity when omitted.
    """

    def __init__(self, kind: str, *, group: str | None = None, adapt: Adapt | None = None) -> None:
        self.kind = kind
        self.group = group
        self._adapt: Adapt = adapt or (lambda name, obj: obj)
        self._items: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._imported: dict[str, T] = {}
        self._errors: list[PluginError] = []
        self._discovered = group is None

    # ------------------------------------------------------------------ registering
    def add(self, name: str, obj: T, origin: Origin | None = None) -> T:
        """Register ``obj`` under ``name``; raises ``KeyError`` if the name is taken."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        if origin is not None:
            self._origins[name] = origin
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(obj: T) -> T:
            return self.add(name, obj)

        return deco

    # ------------------------------------------------------------------ looking up
    def get(self, name: str) -> T:
        """The object registered as ``name``, a plugin's, or the one an import name names; an
        unknown name raises listing the choices, a broken plugin's name raises why it is out."""
        if name in self._items:
            return self._items[name]
        self._discover()
        if name in self._items:
            return self._items[name]
        if is_import_name(name):
            return self._import(name)
        for err in self._errors:
            if err.name == name:
                raise UsageError(err.message)
        known = ", ".join(self.names()) or "(none)"
        raise UsageError(f"unknown {self.kind} {name!r}; choose from: {known}")

    def unavailable(self, name: str) -> str | None:
        """Why ``name`` cannot be used when it names a plugin left out or an import name that
        fails (one line); None when it is usable or simply unknown."""
        if name in self._items:
            return None
        self._discover()
        for err in self._errors:
            if err.name == name and name not in self._items:
                return err.message
        if is_import_name(name):
            try:
                self._import(name)
            except UsageError as exc:
                return str(exc)
        return None

    def origin(self, name: str) -> Origin | None:
        """Where ``name`` comes from: None for what is registered by code (built-in names)."""
        return self._origins.get(name)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names (plugins included) matching an fnmatch ``pattern``."""
        self._discover()
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def plugin_errors(self) -> list[PluginError]:
        """The plugins left out, each with its one-line reason (those only waiting for an
        optional dependency have ``missing`` set)."""
        self._discover()
        return list(self._errors)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._items:
            return True
        self._discover()
        if name in self._items:
            return True
        if is_import_name(name):
            try:
                self._import(name)
            except UsageError:
                return False
            return True
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # ------------------------------------------------------------------ plugins
    def reload_plugins(self) -> None:
        """Forget what came from entry points and import names; they are found again on the next
        lookup (after installing a plugin in a running process, and in tests)."""
        for name in [n for n, o in self._origins.items() if n in self._items]:
            del self._items[name]
        self._origins.clear()
        self._imported.clear()
        self._errors.clear()
        self._discovered = self.group is None

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # first: a plugin that looks names up while it loads sees ours
        assert self.group is not None
        try:
            found = list(metadata.entry_points(group=self.group))
        except Exception as exc:  # broken metadata of some distribution: say so, carry on
            log.warning("cannot list the %s plugins: %s", self.kind, exc)
            return
        for ep in sorted(found, key=lambda e: (_dist_name(e) or "", e.name)):
            self._load_entry_point(ep)

    def _load_entry_point(self, ep: metadata.EntryPoint) -> None:
        dist, version = _dist_name(ep), _dist_version(ep)
        origin = Origin(object=ep.value, distribution=dist, version=version, group=self.group)
        where = f"{self.kind} plugin {ep.name!r} ({origin.label()}, {ep.value})"

        def fail(reason: str, missing: str | None = None) -> None:
            self._errors.append(PluginError(ep.name, f"{where}: {reason}", missing))

        if not PLUGIN_NAME.fullmatch(ep.name):
            return fail("not a plain name (letters, digits, '.', '_', '-'); rename the entry "
                        "point")
        if ep.name in self._items:
            taken = self._origins.get(ep.name)
            return fail(f"the name is taken by {taken.label()}; ignored" if taken else
                        f"reuses the name of a built-in {self.kind}; ignored (rename the entry "
                        "point)")
        try:
            obj = ep.load()
        except MissingDependency as exc:  # an optional extra not installed: not a breakage
            return fail(_reason(exc), missing=_reason(exc))
        except _PLUGIN_FAILURES as exc:
            return fail(f"cannot import it: {_reason(exc)}")
        try:
            item = self._adapt(ep.name, obj)
        except _PLUGIN_FAILURES as exc:
            return fail(f"breaks the {self.kind} contract: {_reason(exc)}")
        self.add(ep.name, item, origin)

    def _import(self, name: str) -> T:
        if name in self._imported:
            return self._imported[name]
        if not imports_allowed():
            raise UsageError(f"{self.kind} {name!r} is named by its import path: not imported "
                             "while reading results")
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = import_module(module_name)
        except _PLUGIN_FAILURES as exc:
            raise UsageError(f"{self.kind} {name!r}: cannot import {module_name}: "
                             f"{_reason(exc)}") from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise UsageError(f"{self.kind} {name!r}: {module_name} has no {attr!r}")
            obj = getattr(obj, part)
        try:
            item = self._adapt(name, obj)
        except _PLUGIN_FAILURES as exc:
            raise UsageError(f"{self.kind} {name!r} breaks the {self.kind} contract: "
                             f"{_reason(exc)}") from None
        self._imported[name] = item
        self._origins[name] = Origin(name, *distribution_of(module_name))
        return item


def import_module(module_name: str) -> Any:
    """Import ``module_name`` as Python does; a module not found on the path is also looked for
    in the current folder (as ``python -m`` would), which is then added at the end of the path
    (worker processes inherit it)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        cwd = os.getcwd()
        here = Path(cwd, f"{top}.py").is_file() or Path(cwd, top).is_dir()
        if exc.name != top or not here or "" in sys.path or cwd in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(module_name)


def distribution_of(module_name: str) -> tuple[str | None, str | None]:
    """The installed distribution providing top-level package of ``module_name``, and its
    version; ``(None, None)`` for code that is not installed."""
    top = module_name.split(".")[0]
    try:
        names = metadata.packages_distributions().get(top) or []
        if not names:
            return None, None
        return names[0], metadata.version(names[0])
    except Exception:  # metadata of some other distribution is broken
        return None, None


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.metadata["Name"] or dist.name)


def _dist_version(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.version)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (ContractError, UsageError, MissingDependency)) and text:
        return text  # the message is the reason
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
