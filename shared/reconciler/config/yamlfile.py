"""YAML reading that keeps line numbers and tolerates repeated keys.

The spec's own ``blacksmith.conf`` example repeats the top-level ``reconciler:`` key. A
plain ``yaml.safe_load`` silently keeps only the last block; we keep what the author
meant: the later block deep-merged over the earlier one, with a warning naming both lines.

We compose the node tree with libyaml (CSafeLoader) when available, then build the Python
data ourselves so every key's line is known for error messages.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError
from .models import deep_merge

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
# Aliases are expanded into plain data: bound the result so a "billion laughs" file is refused
# instead of eating the Lambda's memory. A real blacksmith.conf has a few hundred nodes.
MAX_NODES = 100_000

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    def __init__(self, loader: Any, file_name: str):
        self.loader = loader
        self.file_name = file_name
        self.lines: dict[Path, int] = {}
        self.warnings: list[str] = []
        self.problems: list[str] = []
        self._active: set[int] = set()
        self._nodes = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self._active:
            self.problems.append(f"{self.file_name} line {line}: recursive YAML alias")
            return None
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError(f"invalid configuration: {self.file_name}: more than {MAX_NODES} YAML values once "
                              "aliases are expanded; accepted: a plain configuration (aliases used sparingly)")
        plain = _PLAIN_TAGS.get(type(node))
        if plain and node.tag != plain:
            # Safe loading refuses e.g. !!python/object: name it instead of silently reading the plain data.
            self.problems.append(f"{self.file_name} line {line}: YAML tag {node.tag!r} is not accepted; "
                                 "accepted: plain YAML mappings, lists and scalars")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                out = []
                for i, child in enumerate(node.value):
                    self.lines[(*path, i)] = child.start_mark.line + 1
                    out.append(self.build(child, (*path, i)))
                return out
            try:
                return self.loader.construct_object(node, deep=True)
            except ValueError as exc:  # e.g. an integer of more than 4300 digits
                self.problems.append(f"{self.file_name} line {line}: {format_path(path) or 'value'}: "
                                     f"cannot be read ({str(exc).split(':')[0]})")
                return None
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        # YAML merge keys (<<: *anchor) first; the mapping's own keys override them silently.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                # Earlier sources win over later ones (YAML merge semantics).
                for source in reversed(sources):
                    if not isinstance(source, yaml.MappingNode):
                        self.problems.append(
                            f"{self.file_name} line {source.start_mark.line + 1}: '<<' merges only mappings"
                        )
                        continue
                    merged = self._mapping(source, path)
                    result.update(merged)
        own_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(f"{self.file_name} line {line}: a key must be a plain string")
                continue
            key = key_node.value  # the text as written: "on"/"yes"/"1" stay strings
            value = self.build(value_node, (*path, key))
            where = format_path((*path, key))
            if key in own_lines:
                if isinstance(result.get(key), dict) and isinstance(value, dict):
                    self.warnings.append(
                        f"{self.file_name} line {line}: key '{where}' appears again (first at line "
                        f"{own_lines[key]}); the later block is merged over the earlier one"
                    )
                    value = deep_merge(result[key], value)
                else:
                    self.warnings.append(
                        f"{self.file_name} line {line}: key '{where}' appears again (first at line "
                        f"{own_lines[key]}); the later value wins"
                    )
            own_lines[key] = line
            self.lines[(*path, key)] = line
            result[key] = value
        return result


def load_yaml(text: str, file_name: str) -> tuple[Any, dict[Path, int], list[str]]:
    """Parse ``text``: (data, {key path: line}, warnings). Malformed YAML -> ConfigError."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return {}, {}, []
            builder = _Builder(loader, file_name)
            data = builder.build(node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
            what = exc.problem or "syntax error"
            if exc.context:
                what += f", {exc.context}"
            lines = text.splitlines()
            if mark and mark.line < len(lines) and "\t" in lines[mark.line]:
                what += "; indent with spaces, not tabs"
            raise ConfigError(
                f"invalid configuration: {file_name}{where}: malformed YAML ({what}); "
                "accepted: a YAML mapping such as 'reconciler:' with indented keys"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid configuration: {file_name}: malformed YAML ({exc})") from None
    finally:
        loader.dispose()
    if builder.problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(builder.problems))
    return data, builder.lines, builder.warnings
