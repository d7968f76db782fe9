"""Secret values and secret references.

A configuration value that is a credential (client secret, password, Vault token) is held
in a :class:`Secret`. It is either a plain value (fine locally) or a *reference* to AWS,
written as a string with a prefix, in the file and in environment variables alike:

- ``ssm:/blacksmith/cf/prod/client_secret``  - an SSM parameter (SecureString is decrypted)
- ``secretsmanager:blacksmith/vault``          - a Secrets Manager secret (its string)
- ``secretsmanager:blacksmith/cf#client_secret`` - one field of a JSON secret
- ``plain:ssm:literal``                        - a literal that happens to start with a prefix

References are resolved lazily, on the first :meth:`Secret.get`, through Powertools
Parameters, which caches the value for ``max_age`` seconds (default 300, or
``POWERTOOLS_PARAMETERS_MAX_AGE``). A Secret never shows its value: ``repr``/``str``/
``format`` print ``***`` (plus the reference name, which is not secret), and resolution
errors name the reference and the configuration key, never a value.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic_core import core_schema

from .errors import ConfigError

MASK = "***"
PREFIXES = ("ssm:", "secretsmanager:", "plain:")
DEFAULT_MAX_AGE_S = 300


def _max_age() -> int:
    raw = os.environ.get("POWERTOOLS_PARAMETERS_MAX_AGE", "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_MAX_AGE_S


class Secret:
    """A credential or a reference to one; never prints its value."""

    __slots__ = ("_value", "kind", "name", "field", "origin")

    def __init__(self, raw: str, *, origin: str = "", field: str = ""):
        if not isinstance(raw, str):
            raise TypeError("Secret takes a string")
        self.origin = origin  # where it was configured ("blacksmith.conf line 12", "env VAULT_TOKEN")
        self.field = field  # for JSON secrets: the key to pick
        self._value: str | None = None
        if raw.startswith("ssm:"):
            self.kind, self.name = "ssm", raw[len("ssm:") :].strip()
        elif raw.startswith("secretsmanager:"):
            ref = raw[len("secretsmanager:") :].strip()
            self.kind = "secretsmanager"
            self.name, _, self.field = ref.partition("#")
        else:
            self.kind, self.name = "plain", ""
            self._value = raw[len("plain:") :] if raw.startswith("plain:") else raw
        if self.kind != "plain" and not self.name:
            raise ValueError(f"secret reference {raw.split(':', 1)[0]}: names no parameter")

    # --- never show the value ------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Secret({self.describe()})"

    def __str__(self) -> str:
        return self.describe()

    def __format__(self, spec: str) -> str:
        return self.describe()

    def describe(self) -> str:
        """A printable description: ``***`` for a plain value, ``*** (ssm:/name)`` for a reference."""
        if self.kind == "plain":
            return MASK
        ref = f"{self.kind}:{self.name}" + (f"#{self.field}" if self.field else "")
        return f"{MASK} ({ref})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return (self.kind, self.name, self.field, self._value if self.kind == "plain" else None) == (
            other.kind,
            other.name,
            other.field,
            other._value if other.kind == "plain" else None,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.field))

    def __copy__(self) -> Secret:  # immutable: copies share the instance
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self

    @property
    def is_reference(self) -> bool:
        return self.kind != "plain"

    # --- resolution -------------------------------------------------------------------
    def get(self, *, force_fetch: bool = False) -> str:
        """The secret's value; references are fetched through Powertools Parameters (cached).

        ``force_fetch=True`` bypasses the cache (e.g. after a 401 caused by a rotated secret).
        Raises :class:`ConfigError` naming the reference when it cannot be read.
        """
        if self.kind == "plain":
            return self._value or ""
        from aws_lambda_powertools.utilities import parameters  # cold start: only when SSM/Secrets Manager is named

        where = f" (configured at {self.origin})" if self.origin else ""
        try:
            if self.kind == "ssm":
                value: Any = parameters.get_parameter(
                    self.name, decrypt=True, max_age=_max_age(), force_fetch=force_fetch
                )
            else:
                value = parameters.get_secret(self.name, max_age=_max_age(), force_fetch=force_fetch)
        except Exception as exc:  # GetParameterError, botocore errors, missing region...
            reason = _reason(exc)
            raise ConfigError(
                f"cannot read secret reference {self.kind}:{self.name}{where}: {reason}; "
                f"check that it exists and that the function's role may read it"
            ) from None
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            value = str(value)
        if self.field:
            try:
                doc = json.loads(value)
            except ValueError:
                raise ConfigError(
                    f"secret reference secretsmanager:{self.name}#{self.field}{where}: the secret is not a JSON object"
                ) from None
            if not isinstance(doc, dict) or self.field not in doc:
                raise ConfigError(
                    f"secret reference secretsmanager:{self.name}#{self.field}{where}: "
                    f"the JSON secret has no key {self.field!r}"
                )
            value = doc[self.field]
            if not isinstance(value, str):
                value = json.dumps(value)
        return value

    # --- pydantic integration ------------------------------------------------------------
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            cls._coerce,
            core_schema.is_instance_schema(cls),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.describe()),
        )

    @classmethod
    def _coerce(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            if not value:
                raise ValueError("empty")
            return cls(value)
        # YAML turns unquoted 0123 / 1e3 / true into numbers and booleans: refuse rather than guess.
        raise ValueError("expected a string (quote it in YAML)")


class CertRef(Secret):
    """A CA certificate: PEM text, a file path, or a reference. Not secret, so it prints a summary."""

    __slots__ = ()

    def describe(self) -> str:
        if self.kind != "plain":
            return f"{self.kind}:{self.name}" + (f"#{self.field}" if self.field else "")
        text = self._value or ""
        return f"PEM ({len(text)} bytes)" if "-----BEGIN" in text else text


def _reason(exc: BaseException) -> str:
    """A short cause without values: error codes and messages from AWS name parameters, not data."""
    cause = exc.__cause__ or exc
    code = getattr(cause, "response", {}).get("Error", {}).get("Code") if hasattr(cause, "response") else None
    text = str(exc).strip() or type(exc).__name__
    if code and code not in text:
        text = f"{code}: {text}"
    return text[:300]


def clear_secret_cache() -> None:
    """Forget every cached parameter/secret value (tests; rotation)."""
    from aws_lambda_powertools.utilities import parameters  # cold start: only when SSM/Secrets Manager is named

    parameters.clear_caches()
