"""JSON-over-HTTP plumbing shared by the CF and BOSH adapters: a UAA client-credentials
token source and an :class:`HttpClient` that sends every request through the API's
:class:`~reconciler.resilience.Resilience` (rate limit, breaker, retries) and maps errors.

Secrets (client secrets, passwords, tokens) only ever travel in headers and form bodies;
they are never part of a URL, a log line or an exception message.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from reconciler.errors import InvalidInput, Unauthorized
from reconciler.resilience import Resilience, error_for_status

log = logging.getLogger(__name__)


def reveal(value: Any, *, force_fetch: bool = False) -> str | None:
    """The plain value of a configured secret (``reconciler.secrets.Secret`` or a str)."""
    if value is None or isinstance(value, str):
        return value
    getter = getattr(value, "get", None)
    if callable(getter) and not isinstance(value, Mapping):
        try:
            return getter(force_fetch=force_fetch)
        except TypeError:
            return getter()
    raise InvalidInput(f"unsupported secret holder {type(value).__name__}")


class UaaToken:
    """Client-credentials bearer token, cached until shortly before it expires.

    Refreshed when less than ``refresh_margin`` (default: 10% of its lifetime, at most 5
    minutes, at least 5 s) is left, or at once after the resource server answered 401.
    A 401 from UAA itself (rotated client secret) re-reads the secret reference once.
    """

    def __init__(self, token_url_base: Callable[[], str] | str, client_id: str, client_secret: Any, *,
                 session: requests.Session, resilience: Resilience, api: str, clock=time.time):
        self._base = token_url_base
        self.client_id = client_id
        self._secret = client_secret
        self.session = session
        self.resilience = resilience
        self.api = api
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self.fetches = 0  # tokens obtained (test figure)

    def _url(self) -> str:
        base = self._base() if callable(self._base) else self._base
        return base.rstrip("/") + "/oauth/token"

    def header(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._refresh_at:
                self._fetch()
            return f"bearer {self._token}"

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        url = self._url()
        try:
            body = self._request(url, force_fetch=False)
        except Unauthorized:
            log.warning("%s: UAA rejected client %r; re-reading its secret once", self.api, self.client_id)
            body = self._request(url, force_fetch=True)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token or not isinstance(token, str):
            raise InvalidInput(f"{self.api}: UAA answered POST {urlsplit(url).path} without an access_token")
        lifetime = float(body.get("expires_in") or 0) or 3600.0
        now = self.clock()
        margin = max(5.0, min(300.0, lifetime * 0.1))
        self._token = token
        self._expires_at = now + lifetime
        self._refresh_at = now + max(0.0, lifetime - margin)
        self.fetches += 1
        log.debug("%s: token for client %r valid %ds", self.api, self.client_id, int(lifetime))

    def _request(self, url: str, *, force_fetch: bool) -> dict[str, Any]:
        secret = reveal(self._secret, force_fetch=force_fetch) or ""
        what = f"POST {urlsplit(url).path}"

        def send() -> dict[str, Any]:
            resp = self.session.post(url, data={"grant_type": "client_credentials"},
                                     auth=(self.client_id, secret), headers={"Accept": "application/json"})
            if resp.status_code >= 400:
                raise error_for_status(resp, f"{self.api}/uaa", what)
            try:
                return resp.json()
            except ValueError:
                raise InvalidInput(f"{self.api}/uaa {what}: answer is not JSON") from None

        return self.resilience.call(send, what=f"uaa {what}")


class BasicAuth:
    """HTTP basic credentials as a header source (BOSH basic-auth directors)."""

    def __init__(self, username: str, password: Any):
        self.username = username
        self._password = password

    def header(self) -> str:
        raw = f"{self.username}:{reveal(self._password) or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def invalidate(self) -> None:
        pass


class HttpClient:
    """One API endpoint: base URL, session, resilience, optional auth header source."""

    def __init__(self, api: str, base_url: str, session: requests.Session, resilience: Resilience,
                 auth: UaaToken | BasicAuth | None = None):
        self.api = api
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.resilience = resilience
        self.auth = auth
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.hostname, base.port)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            target = urlsplit(path_or_url)
            if (target.scheme, target.hostname, target.port) != self._origin:
                # never send our credentials to another host a response pointed us at
                raise InvalidInput(f"{self.api}: refusing to follow a link to another host "
                                   f"({target.scheme}://{target.hostname}:{target.port})")
            return path_or_url
        return urljoin(self.base_url + "/", path_or_url.lstrip("/"))

    def request(self, method: str, path_or_url: str, *, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, allow_redirects: bool = True,
                authenticated: bool = True, ok: tuple[int, ...] = (200,),
                timeout: float | None = None) -> requests.Response:
        """Send one request (with retries); a 401 drops the token and tries once more.
        ``timeout``: this request's own timeout (default: the API's)."""
        url = self.url(path_or_url)
        what = f"{method} {urlsplit(url).path}"
        try:
            return self._send(method, url, what, params, headers, allow_redirects, authenticated, ok, timeout)
        except Unauthorized:
            if not (authenticated and self.auth):
                raise
            log.info("%s %s: 401, getting a new token and trying once more", self.api, what)
            self.auth.invalidate()
            return self._send(method, url, what, params, headers, allow_redirects, authenticated, ok, timeout)

    def _send(self, method, url, what, params, headers, allow_redirects, authenticated, ok,
              timeout=None) -> requests.Response:
        h = {"Accept": "application/json", **(headers or {})}
        if authenticated and self.auth:
            # outside the retried attempt: the token source has its own guard and retries
            h["Authorization"] = self.auth.header()

        def attempt() -> requests.Response:
            resp = self.session.request(method, url, params=params, headers=h, allow_redirects=allow_redirects,
                                        timeout=timeout)
            if resp.status_code not in ok:
                raise error_for_status(resp, self.api, what)
            return resp

        return self.resilience.call(attempt, what=what)

    def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        resp = self.request("GET", path_or_url, params=params, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise InvalidInput(f"{self.api} GET {urlsplit(resp.url).path}: answer is not JSON") from None
