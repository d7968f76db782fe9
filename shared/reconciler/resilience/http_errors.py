"""HTTP answers and transport failures as domain errors (``reconciler.errors``)."""

from __future__ import annotations

import ssl
import time
from email.utils import parsedate_to_datetime

import requests

from reconciler.errors import ExternalAPIError, NotFound, PermissionDenied, RateLimited, Unauthorized, Unavailable


def is_certificate_error(exc: BaseException) -> bool:
    """A TLS failure a retry cannot fix (the certificate or host name did not verify), as
    opposed to a handshake cut short by a peer that is down or restarting (EOF, reset)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                if is_certificate_error(arg):
                    return True
            elif isinstance(arg, str) and ("CERTIFICATE_VERIFY_FAILED" in arg or "certificate verify failed" in arg
                                           or "doesn't match" in arg):
                return True
        current = current.__cause__ or current.__context__
    return False


def never_sent(exc: BaseException) -> bool:
    """The connection was never made (refused, or the connect timed out): the server cannot
    have seen the request, so even a non-idempotent one may be sent again."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or type(current).__name__ == "NewConnectionError":
            return True
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        current = (reason if isinstance(reason, BaseException) else None) or (nested[0] if nested else None) \
            or current.__cause__ or current.__context__
    return False


def from_requests_error(exc: requests.RequestException, api: str, what: str) -> ExternalAPIError:
    """A transport failure as a domain error (never the URL's query or any header)."""
    if isinstance(exc, requests.exceptions.SSLError) and not is_certificate_error(exc):
        return Unavailable(f"{api} {what}: connection closed during the TLS handshake (peer down?)", api=api)
    if isinstance(exc, requests.exceptions.SSLError):
        err = Unavailable(f"{api} {what}: TLS verification failed (check the configured CA certificate)", api=api)
        err.tls = True  # fails closed: never retried (retrying cannot fix a certificate)
        return err
    if isinstance(exc, requests.Timeout):
        err = Unavailable(f"{api} {what}: timeout ({type(exc).__name__})", api=api)
    elif isinstance(exc, requests.ConnectionError):
        err = Unavailable(f"{api} {what}: connection error ({type(exc).__name__})", api=api)
    else:
        return Unavailable(f"{api} {what}: request failed ({type(exc).__name__})", api=api)
    err.not_sent = never_sent(exc)
    return err


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def error_for_status(response: requests.Response, api: str, what: str) -> ExternalAPIError:
    """Map an HTTP error answer to a domain error. The message names the API, method and path,
    status and a short reason from well-known error fields: never headers or request bodies."""
    status = response.status_code
    reason = _reason(response)
    msg = f"{api} {what}: HTTP {status}" + (f" ({reason})" if reason else "")
    if status == 401:
        return Unauthorized(msg, api=api, status=status)
    if status == 403:
        return PermissionDenied(msg, api=api, status=status)
    if status == 404:
        return NotFound(msg, api=api, status=status)
    if status == 429:
        return RateLimited(msg, api=api, status=status, retry_after=_retry_after(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        return Unavailable(msg, api=api, status=status)
    return ExternalAPIError(msg, api=api, status=status)


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip().splitlines()
        return text[0][:120] if text and response.headers.get("Content-Type", "").startswith("text/") else ""
    parts: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # CF v3
            parts += [str(errors[0].get(k)) for k in ("title", "detail") if errors[0].get(k)]
        elif isinstance(errors, list) and errors:  # Vault
            parts.append(str(errors[0]))
        for key in ("error", "description", "code"):  # UAA, BOSH
            if body.get(key) and not isinstance(body.get(key), dict | list):
                parts.append(str(body[key]))
    return ": ".join(parts)[:200]
