"""UAA emulator: ``POST /oauth/token`` (client_credentials, password, refresh_token),
``GET /token_keys``, ``GET /login`` and ``GET /healthz``, wire shapes per uaa.md.

Tokens are real JWTs (``header.payload.signature``, HS256 with a key made at start), so
clients that decode them see the claims UAA puts there. :class:`TokenAuthority` mints and
validates them; the CF and BOSH emulators share one to check bearer tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from mockstack.base import Emulator, Request, Response, json_response

_UAA_JSON = "application/json;charset=UTF-8"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Mints and checks HS256 JWTs. The key is random per instance (per stack start), so a
    token never survives a restart; :meth:`rotate_key` invalidates every token at once."""

    def __init__(self, key: bytes | None = None, kid: str = "legacy-token-key") -> None:
        # a printable secret, so /token_keys can publish it as UAA does for symmetric keys
        self._key = key or secrets.token_urlsafe(32).encode()
        self.kid = kid
        self._lock = threading.Lock()
        self._opaque: dict[str, dict[str, Any]] = {}
        self._revoked: set[str] = set()

    @property
    def key(self) -> bytes:
        return self._key

    def rotate_key(self) -> None:
        """Every token issued so far stops validating (as after a UAA key rotation)."""
        with self._lock:
            self._key = secrets.token_urlsafe(32).encode()
            self._opaque.clear()

    def revoke(self, jti: str) -> None:
        with self._lock:
            self._revoked.add(jti)

    def mint(self, claims: dict[str, Any], *, opaque: bool = False) -> str:
        if opaque:
            token = secrets.token_hex(16)
            with self._lock:
                self._opaque[token] = dict(claims)
            return token
        header = {"alg": "HS256", "kid": self.kid, "typ": "JWT"}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64url(signature)

    def decode(self, token: str) -> dict[str, Any] | None:
        """Claims of a token with a good signature, expired or not; ``None`` otherwise."""
        if not isinstance(token, str) or not token:
            return None
        with self._lock:
            opaque = self._opaque.get(token)
            key = self._key
        if opaque is not None:
            return dict(opaque)
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _b64url_decode(parts[2])):
                return None
            claims = json.loads(_b64url_decode(parts[1]))
        except (ValueError, binascii.Error):
            return None
        return claims if isinstance(claims, dict) else None

    def validate(self, token: str, *, audience: str | None = None,
                 allow_refresh: bool = False) -> dict[str, Any] | None:
        """Claims of a valid, unexpired access token, else ``None``.

        Refresh tokens (``jti`` ending in ``-r``, as UAA marks them) are rejected unless
        ``allow_refresh``; ``audience`` (e.g. ``cloud_controller``) must be in ``aud`` when given.
        """
        claims = self.decode(token)
        if claims is None:
            return None
        jti = str(claims.get("jti", ""))
        if jti in self._revoked or (jti.endswith("-r") and not allow_refresh):
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            return None
        if audience is not None and audience not in (claims.get("aud") or []):
            return None
        return claims

    def token_key(self) -> dict[str, Any]:
        """The ``/token_keys`` entry UAA publishes for a symmetric (HS256) key."""
        return {"kty": "MAC", "alg": "HS256", "use": "sig", "kid": self.kid,
                "value": self._key.decode("latin-1")}


class UAAError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


def _scopes(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [s for s in value.replace(",", " ").split() if s]
    return [str(s) for s in value]


def _audience(scopes: list[str], client_id: str) -> list[str]:
    """UAA derives ``aud`` from the scope prefixes (``cloud_controller.read`` -> ``cloud_controller``)."""
    aud = {s.rsplit(".", 1)[0] for s in scopes if "." in s}
    aud.add(client_id)
    return sorted(aud)


class UAAEmulator(Emulator):
    """``clients``: ``{client_id: {"secret": str, "authorities"|"scope": [..],
    "authorized_grant_types": [..] (optional)}}``; ``users``: ``{username: password}`` or
    ``{username: {"password", "scope", "user_id", "email"}}``. With users and no ``cf``
    client, the cf CLI's public client (``cf`` with an empty secret) is added.

    ``expires_in`` (seconds) may be changed at run time to test token refresh;
    ``error_style="legacy"`` answers bad credentials with ``"unauthorized"`` like UAA
    releases before Nov 2023 (default: current ``"invalid_client"``).
    """

    api = "uaa"

    DEFAULT_USER_SCOPES = ["cloud_controller.admin", "cloud_controller.read", "cloud_controller.write",
                           "openid", "password.write", "scim.read", "uaa.user"]

    def __init__(self, clients: dict[str, dict[str, Any]] | None = None, users: dict[str, Any] | None = None,
                 expires_in: int = 43199, *, refresh_expires_in: int = 2592000,
                 authority: TokenAuthority | None = None, error_style: str = "current") -> None:
        if error_style not in ("current", "legacy"):
            raise ValueError("error_style must be 'current' or 'legacy'")
        self.authority = authority or TokenAuthority()
        self.expires_in = expires_in
        self.refresh_expires_in = refresh_expires_in
        self.error_style = error_style
        self._issuer: str | None = None
        self.clients: dict[str, dict[str, Any]] = {}
        for cid, spec in (clients or {}).items():
            self.add_client(cid, **spec)
        self.users: dict[str, dict[str, Any]] = {}
        for name, spec in (users or {}).items():
            spec = {"password": spec} if isinstance(spec, str) else dict(spec)
            self.add_user(name, **spec)
        if self.users and "cf" not in self.clients:
            self.add_client("cf", secret="", scope=["cloud_controller.admin", "cloud_controller.read",
                                                    "cloud_controller.write", "openid", "password.write",
                                                    "scim.read", "uaa.user", "cloud_controller.admin_read_only",
                                                    "cloud_controller.global_auditor"],
                            authorized_grant_types=["password", "refresh_token"])

    def add_client(self, client_id: str, secret: str = "", authorities: Any = None, scope: Any = None,
                   authorized_grant_types: list[str] | None = None) -> None:
        scopes = _scopes(authorities if authorities is not None else scope) or ["uaa.none"]
        grants = authorized_grant_types or (["client_credentials"] if secret else ["password", "refresh_token"])
        self.clients[client_id] = {"secret": secret, "scope": scopes, "grants": list(grants)}

    def add_user(self, username: str, password: str, scope: Any = None, user_id: str | None = None,
                 email: str | None = None) -> None:
        self.users[username] = {"password": password, "scope": _scopes(scope) or list(self.DEFAULT_USER_SCOPES),
                                "user_id": user_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"uaa-user:{username}")),
                                "email": email or f"{username}@example.org"}

    # -- HTTP -------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        not_allowed = UAAError(405, "method_not_allowed", f"Request method '{request.method}' not supported")
        if path == "/oauth/token":
            if request.method != "POST":
                return self._error(not_allowed)
            try:
                return json_response(200, self._token(request), _UAA_JSON, dict(_NO_STORE))
            except UAAError as exc:
                return self._error(exc)
        if request.method != "GET":
            return self._error(not_allowed)
        if path == "/token_keys":
            return json_response(200, {"keys": [self.authority.token_key()]}, _UAA_JSON)
        if path == "/token_key":
            return json_response(200, self.authority.token_key(), _UAA_JSON)
        if path in ("/login", "/info"):
            return json_response(200, {"app": {"version": "77.0.0"}, "zone_name": "uaa",
                                       "links": {"uaa": request.base_url, "login": request.base_url},
                                       "prompts": {"username": ["text", "Email"],
                                                   "password": ["password", "Password"]}}, _UAA_JSON)
        if path == "/healthz":
            return Response(200, b"ok", {"Content-Type": "text/plain"})
        return json_response(404, {"error": "not_found", "error_description": f"No route for {request.path}"},
                             _UAA_JSON)

    def _error(self, exc: UAAError) -> Response:
        return json_response(exc.status, {"error": exc.error, "error_description": exc.description}, _UAA_JSON,
                             {**_NO_STORE, **exc.headers})

    def _bad_credentials(self) -> UAAError:
        code = "unauthorized" if self.error_style == "legacy" else "invalid_client"
        return UAAError(401, code, "Bad credentials", {
            "WWW-Authenticate": 'Basic realm="UAA/client", error="unauthorized", error_description="Bad credentials"'})

    def _client(self, request: Request, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                client_id, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise self._bad_credentials() from None
        if client_id is None:
            raise UAAError(401, "unauthorized", "Full authentication is required to access this resource")
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest((secret or "").encode(), client["secret"].encode()):
            raise self._bad_credentials()
        return client_id, client

    def _token(self, request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if request.body and "application/x-www-form-urlencoded" not in ctype:
            raise UAAError(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        try:
            parsed = parse_qs(request.body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            raise UAAError(400, "invalid_request", "Request body is not valid form data") from None
        form = {k: v[-1] for k, v in parsed.items()}
        grant = form.get("grant_type")
        if not grant:
            raise UAAError(400, "invalid_request", "Missing grant type")
        if grant not in ("client_credentials", "password", "refresh_token"):
            raise UAAError(400, "unsupported_grant_type", "Unsupported grant type")
        client_id, client = self._client(request, form)
        if grant not in client["grants"]:
            raise UAAError(401, "invalid_client", "Unauthorized grant type")
        opaque = form.get("token_format") == "opaque"
        if self._issuer is None:
            self.set_issuer(request.base_url)
        if grant == "client_credentials":
            scopes = self._narrow(client["scope"], form.get("scope"))
            return self._issue(client_id, grant, scopes, None, opaque, refresh=False)
        if grant == "password":
            user = self.users.get(form.get("username") or "")
            if user is None or not hmac.compare_digest((form.get("password") or "").encode(),
                                                       user["password"].encode()):
                raise self._bad_credentials()
            allowed = [s for s in user["scope"] if s in client["scope"]]
            scopes = self._narrow(allowed, form.get("scope"))
            return self._issue(client_id, grant, scopes, form["username"], opaque, refresh=True)
        # refresh_token
        claims = self.authority.validate(form.get("refresh_token") or "", allow_refresh=True)
        if claims is None or not str(claims.get("jti", "")).endswith("-r") or claims.get("cid") != client_id:
            raise UAAError(401, "invalid_token", "Invalid refresh token (expired or unknown)")
        username = claims.get("user_name")
        if username is not None and username not in self.users:
            raise UAAError(401, "invalid_token", "Invalid refresh token: user no longer exists")
        scopes = self._narrow(list(claims.get("scope") or []), form.get("scope"))
        return self._issue(client_id, claims.get("grant_type", "password"), scopes, username, opaque,
                           refresh=True, refresh_token=form["refresh_token"])

    @staticmethod
    def _narrow(allowed: list[str], requested: str | None) -> list[str]:
        wanted = _scopes(requested)
        if not wanted:
            return list(allowed)
        missing = [s for s in wanted if s not in allowed]
        if missing:
            raise UAAError(400, "invalid_scope", f"Invalid scope: {' '.join(missing)}. "
                                                 f"Did you know that you can get default scopes by simply "
                                                 f"sending no value?")
        return wanted

    def _issue(self, client_id: str, grant: str, scopes: list[str], username: str | None, opaque: bool, *,
               refresh: bool, refresh_token: str | None = None) -> dict[str, Any]:
        now = int(time.time())
        issuer = self._issuer or "http://localhost/uaa/oauth/token"
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {"jti": jti}
        if username is None:
            claims.update(sub=client_id, authorities=scopes)
        else:
            user = self.users[username]
            claims.update(sub=user["user_id"])
        claims.update(scope=scopes, client_id=client_id, cid=client_id, azp=client_id, grant_type=grant)
        if username is not None:
            user = self.users[username]
            claims.update(user_id=user["user_id"], origin="uaa", user_name=username, email=user["email"],
                          auth_time=now)
        claims.update(rev_sig=secrets.token_hex(4), iat=now, exp=now + int(self.expires_in), iss=issuer,
                      zid="uaa", aud=_audience(scopes, client_id))
        body: dict[str, Any] = {"access_token": self.authority.mint(claims, opaque=opaque), "token_type": "bearer"}
        if refresh:
            if refresh_token is None:
                refresh_claims = {k: claims[k] for k in ("sub", "scope", "cid", "client_id", "grant_type",
                                                         "user_name", "user_id", "origin", "iss", "zid", "aud")
                                  if k in claims}
                refresh_claims.update(jti=f"{uuid.uuid4().hex}-r", iat=now, exp=now + int(self.refresh_expires_in))
                refresh_token = self.authority.mint(refresh_claims)
            body["refresh_token"] = refresh_token
        body.update(expires_in=int(self.expires_in), scope=" ".join(scopes), jti=jti)
        return body

    def set_issuer(self, base_url: str) -> None:
        """``iss`` claim = ``<uaa url>/oauth/token`` (set by whoever knows the served URL)."""
        self._issuer = base_url.rstrip("/") + "/oauth/token"


def fetch_token(uaa_url: str, client_id: str, client_secret: str, *, timeout: float = 10.0,
                verify: bool | str = True) -> str:
    """Client-credentials token from a (mock) UAA, for tests and tools."""
    import requests

    response = requests.post(f"{uaa_url.rstrip('/')}/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, client_secret), headers={"Accept": "application/json"},
                             timeout=timeout, verify=verify)
    response.raise_for_status()
    return response.json()["access_token"]
