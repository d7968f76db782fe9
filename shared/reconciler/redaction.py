"""Redaction, the second line of defence (the first is never logging a secret): values under
secret-looking keys, and bearer/Vault tokens, basic-auth URLs and PEM private keys in any text.

Used by the log formatter (``observability``) and by the store's error ring (``/b/status``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# keys whose string values are secrets; counts such as ``credentials_recovered: 3`` stay
SENSITIVE_KEY = re.compile(r"pass(word|wd|phrase)?$|secret|token|credential|private_?key|api_?key|authorization"
                           r"|cookie|^auth$|x-vault-token", re.IGNORECASE)
_TEXT_RULES: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys (certificates are public and stay)
    (re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|$)", re.DOTALL),
     r"-----BEGIN \1PRIVATE KEY-----***"),
    # Authorization: Bearer <token> / Basic <b64>
    (re.compile(r"\b(Bearer|Basic)(\s+|%20)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), r"\1 ***"),
    # X-Vault-Token: <token> (headers dumped as dicts or text), password=..., "client_secret": "..."
    (re.compile(r"""((?:x-vault-token|client_secret|secret|password|passwd|token|private_key)"""
                r"""["']?\s*[:=]\s*["']?)(?!\*\*\*)([^\s"',;&}\]]+)""", re.IGNORECASE), r"\1***"),
    # https://user:password@host
    (re.compile(r"(://[^/\s:@\"']+:)[^@\s/\"']+@"), r"\1***@"),
    # Vault service tokens (hvs./s./hvb.) wherever they appear
    (re.compile(r"\b(hv[sbr]\.)[A-Za-z0-9_\-]{16,}"), r"\1***"),
]


def redact_text(text: str) -> str:
    """``text`` with tokens, passwords and private keys masked."""
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with secret-looking keys' values masked."""
    if _depth > 20:
        return MASK
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and SENSITIVE_KEY.search(key) and not _harmless(item):
                out[key] = MASK
            else:
                out[key] = redact(item, _depth + 1)
        return out
    if isinstance(value, list | tuple | set):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))  # exceptions, datetimes...: as JSON would print them, masked


def _harmless(value: Any) -> bool:
    """Figures and flags under a secret-looking key (``credentials_recovered: 2``) are not secrets."""
    return value is None or isinstance(value, bool | int | float) or value == MASK
