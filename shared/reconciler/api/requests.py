"""Validation of ``POST /b/reconcile`` bodies: what a selective run may name."""

from __future__ import annotations

import json
import re
import uuid

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from reconciler.errors import InvalidInput

MAX_BODY_BYTES = 64 * 1024
MAX_SELECTED = 1000
_SERVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: "$" would accept a trailing newline

ACCEPTED = (
    "accepted: an empty body, or a JSON object with optional fields "
    '"instances" (list of service instance UUIDs), "services" (list of broker service ids, '
    f'letters, digits, ".", "_", "-"), at most {MAX_SELECTED} entries each, "dry_run" (true: plan only, '
    f'nothing written), "force" (default true: clear the deployment cache); body at most {MAX_BODY_BYTES} bytes'
)


class ReconcileRequest(BaseModel):
    """A forced run; with ``instances`` or ``services`` it reconciles only those."""

    model_config = ConfigDict(extra="forbid")

    instances: list[str] = Field(default_factory=list, max_length=MAX_SELECTED)
    services: list[str] = Field(default_factory=list, max_length=MAX_SELECTED)
    dry_run: StrictBool = False
    force: StrictBool = True

    @field_validator("instances")
    @classmethod
    def _uuids(cls, values: list[str]) -> list[str]:
        normalised = []
        for value in values:
            try:
                normalised.append(str(uuid.UUID(str(value))))
            except ValueError:
                raise ValueError(f"{str(value)[:80]!r} is not a UUID") from None
        return sorted(set(normalised))

    @field_validator("services")
    @classmethod
    def _service_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not isinstance(value, str) or not _SERVICE_ID.match(value):
                raise ValueError(f"{str(value)[:80]!r} is not a service id")
        return sorted(set(values))

    @property
    def selective(self) -> bool:
        return bool(self.instances or self.services)


def parse_reconcile_body(body: str | bytes | None) -> ReconcileRequest:
    """Parse and validate a request body; raises InvalidInput saying what is accepted."""
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"request body is {len(raw)} bytes; {ACCEPTED}")
    if not raw.strip():
        return ReconcileRequest()
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise InvalidInput(f"request body is not valid JSON ({exc.__class__.__name__}); {ACCEPTED}") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(payload).__name__}; {ACCEPTED}")
    try:
        return ReconcileRequest.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
        )
        raise InvalidInput(f"{problems}; {ACCEPTED}") from None


RESTORE_ACCEPTED = ('accepted: a JSON object {"instance_id": UUID, "sha256": 64 hex digits, "path": optional '
                    'path inside the backup, "dry_run": optional true/false}')


class RestoreRequest(BaseModel):
    """``POST /b/restore``: an instance (or one of its paths) back to a backup."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # pydantic-core regex: $ is the end (no \Z)
    path: str | None = Field(default=None, max_length=1000)
    dry_run: StrictBool = False

    @field_validator("instance_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise ValueError(f"{str(value)[:80]!r} is not a UUID") from None


def parse_restore_body(body: bytes | None) -> RestoreRequest:
    raw = body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"request body is {len(raw)} bytes; {RESTORE_ACCEPTED}")
    try:
        payload = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"request body is not valid JSON ({exc.__class__.__name__}); {RESTORE_ACCEPTED}") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"request body must be a JSON object; {RESTORE_ACCEPTED}")
    try:
        return RestoreRequest.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: "
                             f"{err['msg'].removeprefix('Value error, ')}" for err in exc.errors())
        raise InvalidInput(f"{problems}; {RESTORE_ACCEPTED}") from None
