"""The key/environment-variable reference table, generated from the models.

docs/configuration.md embeds it between markers; a unit test keeps the two identical.
Regenerate with ``python -m reconciler.config reference --write docs/configuration.md``.
"""

from __future__ import annotations

import json
from typing import Any

from .effects import effects_table
from .loader import all_env_keys, describe_accepted, field_at, is_secret_field
from .models import BoshDirector, CFFoundation, Settings

BEGIN = "<!-- BEGIN GENERATED: configuration keys (python -m reconciler.config reference) -->"
END = "<!-- END GENERATED -->"


def _default(path: tuple, settings: Settings) -> str:
    if path[0] in ("cf", "bosh"):
        info = _list_item_model(path[0]).model_fields[path[-1]]
        if info.is_required():
            return "required"
        value: Any = info.default_factory() if info.default_factory is not None else info.default
    else:
        value = settings
        for part in path:
            value = getattr(value, part)
    if path[-1] == "broker_name":
        return "`blacksmith` (if broker_guid is unset)"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{_duration(value)}`" if _is_duration(path) else f"`{value:g}`"
    if isinstance(value, list) and not value:
        return "none"
    if isinstance(value, list):
        return "`" + ",".join(value) + "`"
    if isinstance(value, dict):
        return "`" + ",".join(f"{k}={v}" for k, v in value.items()) + "`"
    return f"`{value}`"


def _list_item_model(section: str) -> Any:
    return CFFoundation if section == "cf" else BoshDirector


def _is_duration(path: tuple) -> bool:
    return "duration" in describe_accepted(field_at(path))


def _duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    out = ""
    rest = seconds
    if seconds % 86400 == 0:  # whole days (remediation ages) read better as days
        return f"{int(seconds // 86400)}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if rest >= size:
            count = int(rest // size)
            out += f"{count}{unit}"
            rest -= count * size
    if rest:
        out += f"{rest:g}s"
    return out


def reference_table() -> str:
    """Markdown: one row per key with its environment variable names, default and accepted values."""
    settings = Settings()
    rows = [
        "| File key | Environment variable(s) | Default | Accepted |",
        "| --- | --- | --- | --- |",
    ]
    for key in all_env_keys():
        names = ", ".join(f"`{n}`" for n in key.names)
        if key.secret_names:
            names += ", " + ", ".join(f"`{n}`" for n in key.secret_names)
        if key.fallbacks:
            names += " (fallback " + ", ".join(f"`{n}`" for n in key.fallbacks) + ")"
        accepted = describe_accepted(key.field) or "a string"
        if is_secret_field(key.field):
            accepted += " (secret: never logged)"
        rows.append(f"| `{key.key}` | {names} | {_default(key.path, settings)} | {accepted} |")
    return "\n".join(rows)


EFFECTS_BEGIN = "<!-- BEGIN GENERATED: key effects (python -m reconciler.config reference) -->"
EFFECTS_END = "<!-- END GENERATED: key effects -->"


def _replace(document: str, begin: str, end: str, table: str) -> str:
    start, stop = document.index(begin), document.index(end, document.index(begin))
    return document[: start + len(begin)] + "\n\n" + table + "\n\n" + document[stop:]


def embed(document: str) -> str:
    """``document`` with the text between the markers replaced by the current tables (the key
    reference; the "what each key does here" table when its markers are present)."""

    document = _replace(document, BEGIN, END, reference_table())
    if EFFECTS_BEGIN in document:
        document = _replace(document, EFFECTS_BEGIN, EFFECTS_END, effects_table())
    return document


def effective_config(settings: Settings) -> str:
    """The settings as JSON with secrets masked: safe to print or log."""
    return json.dumps(settings.model_dump(mode="json", by_alias=True), indent=2)
