"""Domain exceptions.

Adapters map wire errors onto these, so phase logic and the state machine (which sees
the class name as the ASL error name) reason about failures without knowing HTTP.
Messages must never carry a secret: name the path, endpoint or key, never a value.
"""


class ReconcilerError(Exception):
    """Base of every error the reconciler raises on purpose."""


class ConfigError(ReconcilerError):
    """A configuration value is missing or invalid (the message names key, value source and what is accepted)."""


class InvalidInput(ReconcilerError):
    """Input from a user or an external system is malformed (world file, API body, manifest)."""


class ExternalAPIError(ReconcilerError):
    """An external system answered with an error or could not be reached."""

    def __init__(self, message: str, *, api: str = "", status: int | None = None):
        super().__init__(message)
        self.api = api
        self.status = status


class NotFound(ExternalAPIError):
    """The resource does not exist (CF 404, BOSH 70000, Vault 404)."""


class Unauthorized(ExternalAPIError):
    """Authentication failed or the token expired (401)."""


class PermissionDenied(ExternalAPIError):
    """Authenticated but not allowed (403); the message names the path."""


class RateLimited(ExternalAPIError):
    """The remote system said 429, or the local rate limiter's wait_timeout elapsed."""

    def __init__(self, message: str, *, api: str = "", status: int | None = None, retry_after: float | None = None):
        super().__init__(message, api=api, status=status)
        self.retry_after = retry_after


class Unavailable(ExternalAPIError):
    """Timeout, connection error or 5xx: the system is down or overloaded."""

    tls = False  # a TLS verification failure: fails closed, never retried
    not_sent = False  # the request never reached the server: safe to retry even when not idempotent


class VaultSealed(Unavailable):
    """Vault is sealed: nothing can be read or written until an operator unseals it."""


class CircuitOpen(Unavailable):
    """The circuit breaker for this API is open: calls are refused without touching the network.
    ``retry_in``: seconds until a trial call will be let through (None: unknown)."""

    def __init__(self, message: str, *, api: str = "", status: int | None = None, retry_in: float | None = None):
        super().__init__(message, api=api, status=status)
        self.retry_in = retry_in


class CasConflict(ExternalAPIError):
    """A check-and-set write lost the race: the secret changed since it was read (or Vault
    answered 409/412: a conflicting or not-yet-visible state)."""


class Rejected(ExternalAPIError, InvalidInput):
    """The system refused the request itself (400): retrying the same request cannot help."""


class TooLarge(Rejected):
    """The request body is over the system's limit (413, e.g. Vault's max_request_size)."""


class RunLocked(ReconcilerError):
    """Another reconciliation run holds the lock."""

    def __init__(self, message: str, *, holder: str = ""):
        super().__init__(message)
        self.holder = holder
