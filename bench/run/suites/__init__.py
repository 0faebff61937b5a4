"""Suites: YAML files naming datasets, tasks, methods (with config overrides) and seeds.

A suite file::

    name: demo
    seeds: [0]
    datasets: {digits: all, textures: [brick, grass]}
    methods:
      mkd: {expert_weights: random}          # one variant
      ocsvm: [{}, {nu: 0.5}]                 # several variants of one method
    blocks:                                  # optional: more (datasets x methods) grids
      - datasets: {textures: all}
        methods: {kde: {}}

Files are read with ``yaml.safe_load`` only. Shipped suites live beside this module; a user may
pass the path of their own file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import UsageError
from bench.records.key import check_suite_name

SUITE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Block:
    datasets: Mapping[str, Any]           # name -> "all" | list of tasks
    methods: Mapping[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    blocks: tuple[Block, ...]
    source: str

    def method_names(self) -> list[str]:
        return sorted({m for b in self.blocks for m in b.methods})

    def dataset_names(self) -> list[str]:
        return sorted({d for b in self.blocks for d in b.datasets})


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def _block(raw: Mapping[str, Any], where: str) -> Block:
    datasets = raw.get("datasets") or {}
    methods = raw.get("methods") or {}
    if not isinstance(datasets, Mapping) or not isinstance(methods, Mapping):
        raise UsageError(f"{where}: 'datasets' and 'methods' must be mappings")
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
            ds[str(name)] = [str(t) for t in tasks]
        else:
            ds[str(name)] = [str(tasks)]
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
    return Block(ds, ms)


def parse_suite(raw: Any, source: str) -> Suite:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{source}: a suite file must be a YAML mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{source}: the suite needs a 'name'")
    check_suite_name(name, source)
    seeds_raw = raw.get("seeds", [0])
    try:
        seeds = tuple(int(s) for s in (seeds_raw if isinstance(seeds_raw, list) else [seeds_raw]))
    except (TypeError, ValueError):
        raise UsageError(f"{source}: 'seeds' must be a list of integers") from None
    if not seeds:
        raise UsageError(f"{source}: 'seeds' is empty, so the suite has no jobs; e.g. seeds: [0]")
    blocks = []
    if raw.get("datasets") or raw.get("methods"):
        blocks.append(_block(raw, source))
    for i, b in enumerate(raw.get("blocks") or []):
        if not isinstance(b, Mapping):
            raise UsageError(f"{source}: blocks[{i}] must be a mapping")
        blocks.append(_block(b, f"{source}: blocks[{i}]"))
    if not blocks:
        raise UsageError(f"{source}: the suite names no datasets and methods")
    return Suite(name, str(raw.get("description", "")).strip(), seeds, tuple(blocks), source)


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
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_suite(raw, str(path))
