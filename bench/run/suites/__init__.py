"""Suites: YAML files naming datasets, tasks, methods (with config overrides) and seeds.

A suite file::

    name: demo
    seeds: [0]
    datasets: {digits: all, textures: [brick, grass]}
    methods:
      mkd: {expert_weights: random}          # one variant
      ocsvm: [{}, {nu: 0.5}]                 # several variants of one method
    settings: [one-class, few-shot]          # optional: the settings (default: one-class)
    shots: [1, 2, 4]                         # optional: k of the few-shot setting
    blocks:                                  # optional: more (datasets x methods) grids
      - datasets: {textures: all}
        methods: {kde: {}}
        settings: [unified]                  # a block may name its own settings, shots, seeds

Files are read as UTF-8 with :func:`bench.core.yamlfile.read_yaml` (``yaml.safe_load``'s
types, an alias budget, no key given twice), and their schema is checked before any job: each
violation is one line naming the file and the key. Seeds are integers in ``[0, 2**32)``, given
as integers. Shipped suites live beside this module; a user may pass the path of their own file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import UsageError
from bench.core.settings import DEFAULT_SETTING, DEFAULT_SHOTS, check_setting, check_shots
from bench.core.yamlfile import read_yaml
from bench.records.key import check_suite_name

SUITE_DIR = Path(__file__).resolve().parent
#: seeds are what numpy's and torch's generators take: integers in [0, 2**32)
SEED_LIMIT = 2**32


def check_seed(value: Any, where: str) -> int:
    """``value`` as a seed: an integer (not a bool, not a float) in ``[0, 2**32)``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{where}: a seed is an integer, got {value!r}")
    if not 0 <= value < SEED_LIMIT:
        raise UsageError(f"{where}: seed {value} is out of range (allowed: 0 <= seed < 2**32)")
    return value


@dataclass(frozen=True)
class Block:
    datasets: Mapping[str, Any]           # name -> "all" | list of tasks
    methods: Mapping[str, list[dict[str, Any]]]
    #: the block's own settings, shots and seeds (None: the suite's)
    settings: tuple[str, ...] | None = None
    shots: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    blocks: tuple[Block, ...]
    source: str
    settings: tuple[str, ...] = (DEFAULT_SETTING,)
    shots: tuple[int, ...] = DEFAULT_SHOTS

    def method_names(self) -> list[str]:
        return sorted({m for b in self.blocks for m in b.methods})

    def dataset_names(self) -> list[str]:
        return sorted({d for b in self.blocks for d in b.datasets})

    def block_settings(self, block: Block) -> tuple[str, ...]:
        return block.settings if block.settings is not None else self.settings

    def block_shots(self, block: Block) -> tuple[int, ...]:
        return block.shots if block.shots is not None else self.shots

    def setting_names(self) -> list[str]:
        """Every setting some block runs, in the order of :data:`~bench.core.settings.SETTINGS`."""
        from bench.core.settings import SETTINGS

        used = {s for b in self.blocks for s in self.block_settings(b)}
        return [s for s in SETTINGS if s in used]


def _names_list(raw: Any, key: str, where: str, check: Any) -> tuple[Any, ...] | None:
    """A suite's (or block's) ``settings`` or ``shots``: one value or a non-empty list."""
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise UsageError(f"{where}: '{key}' is empty; name at least one, or leave it out")
    out = tuple(check(v, f"{where}: {key}") for v in values)
    if len(set(out)) != len(out):
        raise UsageError(f"{where}: '{key}' names a value twice")
    return out


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def _block(raw: Mapping[str, Any], where: str, top: bool = False) -> Block:
    """One grid; ``top``: the suite's own datasets and methods, whose settings, shots and seeds
    are the suite's."""
    datasets = raw.get("datasets") or {}
    methods = raw.get("methods") or {}
    for key, value in (("datasets", datasets), ("methods", methods)):
        if not isinstance(value, Mapping):
            raise UsageError(f"{where}: {key}: a mapping ({{<name>: ...}}), got "
                             f"{type(value).__name__}")
    for key, value, example in (("datasets", datasets, "{<dataset>: all}"),
                                ("methods", methods, "{<method>: {}}")):
        if not value:
            raise UsageError(f"{where}: '{key}' is empty, so the suite has no jobs; name at "
                             f"least one: {key}: {example}")
    ds: dict[str, Any] = {}
    for name, tasks in datasets.items():
        if tasks in (None, "all"):
            ds[str(name)] = "all"
        elif isinstance(tasks, (list, tuple)):
            if not tasks:
                raise UsageError(f"{where}: dataset {name!r} lists no tasks; name some, or "
                                 "write 'all'")
            ds[str(name)] = [str(_check_task(t, f"{where}: datasets: {name}")) for t in tasks]
        else:
            ds[str(name)] = [str(_check_task(tasks, f"{where}: datasets: {name}"))]
    ms: dict[str, list[dict[str, Any]]] = {}
    for name, variants in methods.items():
        if variants is None:
            variants = [{}]
        elif isinstance(variants, Mapping):
            variants = [dict(variants)]
        elif (isinstance(variants, list) and variants
              and all(isinstance(v, Mapping) for v in variants)):
            variants = [dict(v) for v in variants]
        else:
            raise UsageError(f"{where}: method {name!r} needs a mapping or a non-empty list of "
                             "mappings (one per variant; {} for the defaults)")
        ms[str(name)] = variants
    if top:
        return Block(ds, ms)
    return Block(ds, ms, _names_list(raw.get("settings"), "settings", where, check_setting),
                 _names_list(raw.get("shots"), "shots", where, check_shots),
                 _names_list(raw.get("seeds"), "seeds", where, check_seed))


def _check_task(task: Any, where: str) -> Any:
    if isinstance(task, bool) or not isinstance(task, (str, int)):
        raise UsageError(f"{where}: a task is a name, got {task!r} (write 'all' or a list of "
                         "task names)")
    return task


def parse_suite(raw: Any, source: str) -> Suite:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{source}: a suite file must be a YAML mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{source}: the suite needs a 'name'")
    check_suite_name(name, source)
    seeds_raw = raw.get("seeds", [0])
    if isinstance(seeds_raw, list):
        seeds = tuple(check_seed(s, f"{source}: seeds[{i}]") for i, s in enumerate(seeds_raw))
    else:
        seeds = (check_seed(seeds_raw, f"{source}: seeds"),)
    description = raw.get("description", "")
    if description is not None and not isinstance(description, str):
        raise UsageError(f"{source}: description: a text, got {type(description).__name__}")
    if not seeds:
        raise UsageError(f"{source}: 'seeds' is empty, so the suite has no jobs; e.g. seeds: [0]")
    blocks = []
    if raw.get("datasets") or raw.get("methods"):
        blocks.append(_block(raw, source, top=True))
    raw_blocks = raw.get("blocks") or []
    if not isinstance(raw_blocks, list):
        raise UsageError(f"{source}: blocks: a list of mappings (each with datasets and "
                         f"methods), got {type(raw_blocks).__name__}")
    for i, b in enumerate(raw_blocks):
        if not isinstance(b, Mapping):
            raise UsageError(f"{source}: blocks[{i}] must be a mapping")
        blocks.append(_block(b, f"{source}: blocks[{i}]"))
    if not blocks:
        raise UsageError(f"{source}: the suite names no datasets and methods")
    settings = _names_list(raw.get("settings"), "settings", source, check_setting)
    shots = _names_list(raw.get("shots"), "shots", source, check_shots)
    return Suite(name, (description or "").strip(), seeds, tuple(blocks), source,
                 settings or (DEFAULT_SETTING,), shots or DEFAULT_SHOTS)


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name, or a YAML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.is_file()):
        path = SUITE_DIR / f"{text}.yaml"
        if not path.is_file():
            raise UsageError(f"unknown suite {text!r}; choose from: {', '.join(suite_names())} "
                             "or give the path of a YAML file")
    if not path.is_file():
        raise UsageError(f"suite file not found: {path}")
    return parse_suite(read_yaml(path), str(path))
