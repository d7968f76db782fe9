"""Reading BOSH manifests: YAML parsing (libyaml when present) and the few facts we use.

A malformed manifest is a recorded fact about a deployment, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

try:  # libyaml: ~10x faster on large manifests
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

# ``((name))`` BOSH variables and ``(( spruce operator ))`` left unevaluated.
_PLACEHOLDER = re.compile(r"\(\(\s*[^()]*?\s*\)\)")


@dataclass(frozen=True)
class ParsedManifest:
    data: dict[str, Any] | None
    error: str | None = None


@lru_cache(maxsize=512)
def parse_manifest(text: str | None) -> ParsedManifest:
    """Parse manifest YAML. Never raises; the result is shared (cached): do not mutate it."""
    if text is None:
        return ParsedManifest(None, "no manifest (deployment never deployed or manifest not fetched)")
    if not isinstance(text, str):
        return ParsedManifest(None, "manifest is not text")
    if not text.strip():
        return ParsedManifest(None, "manifest is empty")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - safe loader (C or pure)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        return ParsedManifest(None, f"manifest is not valid YAML{where}: {problem}")
    except (ValueError, RecursionError, MemoryError) as exc:
        return ParsedManifest(None, f"manifest could not be parsed: {type(exc).__name__}")
    if not isinstance(data, dict):
        return ParsedManifest(None, f"manifest is not a YAML mapping (got {type(data).__name__})")
    return ParsedManifest(data)


def dig(data: Any, *keys: str | int) -> Any:
    """``data[k1][k2]...`` or None when any step is missing or of the wrong type."""
    cur = data
    for key in keys:
        if isinstance(key, int):
            if not isinstance(cur, list) or not -len(cur) <= key < len(cur):
                return None
            cur = cur[key]
        else:
            if not isinstance(cur, dict) or key not in cur:
                return None
            cur = cur[key]
    return cur


def is_placeholder(value: Any) -> bool:
    """True for a value that is (or contains) an unresolved ``((...))`` expression."""
    return isinstance(value, str) and _PLACEHOLDER.search(value) is not None


def manifest_releases(data: dict[str, Any] | None) -> list[str]:
    rels = dig(data, "releases")
    if not isinstance(rels, list):
        return []
    return [r["name"] for r in rels if isinstance(r, dict) and isinstance(r.get("name"), str)]


def instance_groups(data: dict[str, Any] | None) -> list[dict[str, Any]]:
    groups = dig(data, "instance_groups")
    if not isinstance(groups, list):
        groups = dig(data, "jobs")  # BOSH v1 manifests
    return [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []


def find_job(data: dict[str, Any] | None, job_names: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
    """(instance group name, job properties) of the first job named in ``job_names``."""
    for group in instance_groups(data):
        for job in group.get("jobs") or []:
            if isinstance(job, dict) and job.get("name") in job_names:
                props = job.get("properties")
                return str(group.get("name", "")), props if isinstance(props, dict) else {}
    return None
