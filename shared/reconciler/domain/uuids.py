"""Instance ids, deployment names and Vault path safety.

An instance id is the OSBAPI ``instance_id``, which for CF is the service instance GUID: a
UUID. Only a validated, lower-cased UUID ever becomes a Vault path segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# 8-4-4-4-12 hex digits; any case on input, lower case after normalisation.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# \Z, not $: "$" also matches before a trailing newline, which must never pass as a UUID.
_UUID_FULL = re.compile(rf"^{_UUID_RE.pattern}\Z")
_LOWER_UUID_FULL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
UUID_LEN = 36


def is_uuid(value: object) -> bool:
    """True for a UUID string in canonical 8-4-4-4-12 form (any case)."""
    return isinstance(value, str) and _UUID_FULL.match(value) is not None


def normalize_uuid(value: object) -> str | None:
    """The lower-case UUID, or None when ``value`` is not a UUID (never raises)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value.lower() if _UUID_FULL.match(value) else None


def is_normal_uuid(value: object) -> bool:
    """True only for an already normalised (lower-case) UUID: what a path segment must be."""
    return isinstance(value, str) and _LOWER_UUID_FULL.match(value) is not None


def trailing_uuid(name: str) -> tuple[str, str] | None:
    """Split ``<prefix>-<uuid>`` at the last 36 characters: (prefix, normalised uuid) or None.

    The prefix may itself contain dashes; the UUID is validated, never found by counting dashes.
    """
    if not isinstance(name, str) or len(name) < UUID_LEN + 2:
        return None
    prefix, sep, tail = name[: -UUID_LEN - 1], name[-UUID_LEN - 1], name[-UUID_LEN:]
    if sep != "-" or not prefix:
        return None
    uid = normalize_uuid(tail)
    return (prefix, uid) if uid else None


def split_deployment_name(name: str, plan_ids: Iterable[str]) -> tuple[str, str] | None:
    """Split a Blacksmith deployment name ``<plan-id>-<instance-guid>`` with the catalog.

    ``plan_ids`` are the broker plan ids we know (e.g. ``redis-cache-small``). Returns
    (plan_id, normalised instance id) when the name is exactly a known plan id, a dash and a
    valid UUID; otherwise None. The UUID is the last 36 characters, so the plan id is
    whatever precedes it, dashes and all (``redis-cache`` cannot shadow ``redis-cache-small``).
    """
    split = trailing_uuid(name)
    if split is None:
        return None
    prefix, uid = split
    known = set(plan_ids)
    if prefix in known:
        return prefix, uid
    return None


def embedded_uuids(text: str) -> list[str]:
    """Every UUID inside ``text`` (normalised, in order, without repeats)."""
    if not isinstance(text, str):
        return []
    seen: list[str] = []
    for m in _UUID_RE.finditer(text):
        start, end = m.span()
        # A UUID glued to more hex digits is not a UUID boundary.
        if (start > 0 and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
            continue
        uid = m.group(0).lower()
        if uid not in seen:
            seen.append(uid)
    return seen


# --- Vault path safety --------------------------------------------------------------------

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def instance_path(instance_id: str, *parts: str, mount: str = "secret") -> str:
    """``<mount>/<id>/<parts...>``; refuses anything but a normalised UUID and plain segments."""
    if not is_normal_uuid(instance_id):
        raise ValueError("instance id is not a normalised UUID; refusing to build a Vault path from it")
    for part in parts:
        if not isinstance(part, str) or not _SEGMENT_RE.match(part) or part in (".", ".."):
            raise ValueError("Vault path segment is not a plain name (letters, digits, '.', '_', '-')")
    return "/".join((mount, instance_id, *parts))


def is_allowed_write_path(path: str, mount: str = "secret") -> bool:
    """True for the only paths the reconciler may write: ``<mount>/db``,
    ``<mount>/<uuid>[/plain/segments...]`` and ``<mount>/backups/<uuid>/<segments...>``."""
    if not isinstance(path, str) or not path.startswith(mount + "/"):
        return False
    parts = path[len(mount) + 1 :].split("/")
    if any(p in ("", ".", "..") or not _SEGMENT_RE.match(p) for p in parts):
        return False
    if parts == ["db"]:
        return True
    if parts[0] == "backups":
        return len(parts) >= 3 and is_normal_uuid(parts[1])
    return is_normal_uuid(parts[0])
