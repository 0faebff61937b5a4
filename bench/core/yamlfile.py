"""YAML from users (suite files, ``--set`` values): ``yaml.safe_load``'s types, with limits.

- **An alias budget**: aliases let a 400-byte file stand for gigabytes (nine levels of nine
  aliases each: a "billion laughs"). The document's expanded size, every node counted as often
  as aliases repeat it and every scalar by its length, must stay within :data:`MAX_EXPANDED`
  (one million); beyond it, and for an alias that contains itself, the file is refused before
  anything is built from it.
- **No duplicate keys**: YAML keeps the last value of a key given twice, without a word; here it
  is an error naming the key and its line (a merge ``<<:`` may still be overridden).
- **UTF-8 text**: a file that is not is one line, as is YAML nested too deeply to read.

Every problem is a :class:`~bench.core.errors.UsageError` of one line naming the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bench.core.errors import UsageError

#: the largest expanded size of a document (nodes + scalar characters, aliases expanded)
MAX_EXPANDED = 1_000_000
_MERGE = "tag:yaml.org,2002:merge"


class YamlLimitError(UsageError):
    """YAML beyond a limit (the alias budget, a self-containing alias, the nesting depth)."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` refusing a key given twice in one mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node, budget: int) -> int:
    """The size of ``root`` with every alias expanded, stopping once over ``budget``; raises
    ``ValueError`` for a node that contains itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ValueError("an alias refers to a node that contains it")
        open_nodes.add(key)
        total = 1
        if isinstance(node, ScalarNode):
            total += len(node.value)
        elif isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child)
                if total > budget:
                    break
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > budget:
                    break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load_yaml(text: str, source: str, max_expanded: int = MAX_EXPANDED) -> Any:
    """The document in ``text`` as ``yaml.safe_load`` reads it, within the limits above."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            expanded = _expanded_size(node, max_expanded)
        except ValueError as exc:
            raise YamlLimitError(f"{source}: not usable YAML: {exc}") from None
        if expanded > max_expanded:
            raise YamlLimitError(f"{source}: its aliases expand it beyond {max_expanded:,} "
                                 "nodes and characters (the limit for YAML read by bench); "
                                 "write it out without aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML: {_first_line(exc)}") from None
    except RecursionError:
        raise YamlLimitError(f"{source}: not usable YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _first_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def read_yaml(path: Path, max_expanded: int = MAX_EXPANDED) -> Any:
    """The YAML file at ``path``, read as UTF-8 (one line otherwise) with :func:`load_yaml`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}: "
                         f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8") from None
    return load_yaml(text, str(path), max_expanded)
