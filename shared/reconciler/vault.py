"""Vault adapter (hvac): token or AWS IAM auth, KV v2/v1 detection, logical paths.

Callers speak logical paths (``secret/db``, ``secret/<id>/credentials``); this module adds
the KV v2 ``data/`` / ``metadata/`` infixes. Wire errors become domain exceptions by the
status of Vault's answer itself (a session hook keeps it: hvac 2.x exceptions carry none):
400 -> Rejected (a lost check-and-set -> CasConflict), 401 -> Unauthorized, 403 ->
PermissionDenied (naming the path and the capability the policy lacks), 404 -> ``None`` on
reads / NotFound, 409/412 -> CasConflict, 413 -> TooLarge (never retried), 429 ->
RateLimited (with Retry-After), sealed 503 -> VaultSealed, other 5xx and timeouts ->
Unavailable. Messages name paths and the Vault address, never a value or token.

Resilience (retry, rate limit, circuit breaker) is plugged in through ``policy``: any
object with ``call(fn, *, operation)`` that runs ``fn`` (retrying it as it sees fit). The
adapter itself never retries, so a sealed Vault costs exactly one request per call.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import hvac
import hvac.exceptions as hx
import requests
from requests.adapters import HTTPAdapter

from reconciler.config.models import Settings
from reconciler.errors import (
    CasConflict,
    ConfigError,
    ExternalAPIError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
    TooLarge,
    Unauthorized,
    Unavailable,
    VaultSealed,
)
from reconciler.resilience import ApiPolicy, Resilience, error_for_status, is_certificate_error, make_session
from reconciler.resilience.http_errors import never_sent

log = logging.getLogger(__name__)
T = TypeVar("T")

Tree = dict[str, tuple[dict[str, Any], int | None]]

# hvac's exception per status, for an error raised without an answer seen (never expected)
_HVAC_STATUS = {hx.InvalidRequest: 400, hx.Unauthorized: 401, hx.Forbidden: 403, hx.InvalidPath: 404,
                hx.PreconditionFailed: 412, hx.RateLimitExceeded: 429, hx.InternalServerError: 500,
                hx.VaultNotInitialized: 501, hx.BadGateway: 502, hx.VaultDown: 503}
# the policy capability each operation needs (named in a 403's message)
_CAPABILITY = {"read": "read", "write": "create/update", "list": "list", "delete": "delete", "detect": "read",
               "lookup-self": "read", "login": "update"}

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")  # a normalised instance id
_SEGMENT_RE = re.compile(r"^[^\x00-\x1f\x7f]+\Z")  # \Z: "$" would let a trailing newline through


class CallPolicy(Protocol):
    """What :class:`reconciler.resilience.Resilience` provides per API/endpoint."""

    def call(self, fn: Callable[[], T], *, what: str = "call", idempotent: bool = True) -> T: ...


def _errors_text(exc: hx.VaultError) -> str:
    errs = getattr(exc, "errors", None) or []
    return " ".join(str(e) for e in errs) if isinstance(errs, list) else str(errs)


def secrets_below(list_folder: Callable[[str], builtins.list[str]], folder: str,
                  exclude: Iterable[str] = ()) -> builtins.list[str]:
    """Every secret path below ``folder``, walking its folders with ``list_folder`` (keys, a
    folder's ending with '/'), except the folders in ``exclude``; sorted."""
    skip = {e if e.endswith("/") else e + "/" for e in exclude}
    out, todo = [], [folder.rstrip("/") + "/"]
    while todo:
        current = todo.pop()
        for key in list_folder(current):
            full = current + key
            if key.endswith("/"):
                if full not in skip:
                    todo.append(full)
            else:
                out.append(full)
    return sorted(out)


class VaultClient:
    """One Vault server and one KV mount.

    ``auth="token"`` uses ``token``; ``auth="aws"`` logs in with ``auth/<aws_mount>/login``
    (IAM method) using ``aws_credentials`` (a botocore Credentials object) or the default
    boto3 session's credentials (the Lambda's role), and logs in again once on a 403.
    ``ca_cert`` (a PEM file path) is what TLS is verified against; ``verify=False`` only
    when explicitly asked (skip_ssl_validation).
    ``kv_version`` (1/2) skips detection; otherwise it is read from ``sys/mounts`` or,
    without permission there, ``sys/internal/ui/mounts/<mount>``.
    """

    def __init__(self, address: str, *, token: str | None = None, auth: str = "token",
                 aws_role: str | None = None, aws_mount: str = "aws", aws_region: str = "us-east-1",
                 aws_header_value: str | None = None, aws_credentials: Any = None,
                 mount: str = "secret", ca_cert: str | None = None, verify: bool = True,
                 timeout: float = 10.0, max_connections: int = 10, kv_version: int | None = None,
                 namespace: str | None = None, policy: CallPolicy | None = None,
                 session: requests.Session | None = None, health_timeout: float | None = None) -> None:
        if not isinstance(address, str) or not re.match(r"^https?://[^/\s]+", address or ""):
            raise ConfigError(f"vault address {address!r} is invalid: expected http(s)://host[:port]")
        if auth not in ("token", "aws"):
            raise ConfigError(f"vault auth {auth!r} is invalid: accepted 'token' or 'aws'")
        if auth == "token" and not token:
            raise ConfigError("vault auth is 'token' but no token is configured (vault.token)")
        if auth == "aws" and not aws_role:
            raise ConfigError("vault auth is 'aws' but no role is configured (vault.aws_role)")
        if kv_version not in (None, 1, 2):
            raise ConfigError(f"vault kv_version {kv_version!r} is invalid: accepted 1 or 2")
        mount = (mount or "").strip("/")
        if not mount or "/" in mount:
            raise ConfigError(f"vault mount {mount!r} is invalid: expected a single path segment such as 'secret'")
        self.address = address.rstrip("/")
        self.mount = mount
        self.auth = auth
        self._aws = {"role": aws_role, "mount": aws_mount, "region": aws_region, "header": aws_header_value,
                     "credentials": aws_credentials}
        self.policy = policy
        self.health_timeout = min(timeout, health_timeout) if health_timeout else timeout
        self._kv_version = kv_version
        self._login_lock = threading.Lock()
        if session is None:
            session = requests.Session()
            pool = HTTPAdapter(pool_connections=max(1, max_connections), pool_maxsize=max(1, max_connections))
            session.mount("https://", pool)
            session.mount("http://", pool)
        self._answers = threading.local()
        session.hooks.setdefault("response", []).append(self._remember)
        # hvac lets a given session's ``verify`` win over its own argument: set it on the session
        session.verify = (ca_cert or True) if verify else False
        self._client = hvac.Client(url=self.address, token=token if auth == "token" else None,
                                   verify=session.verify, timeout=timeout,
                                   namespace=namespace, session=session)
        self._logged_in = auth == "token"

    @classmethod
    def from_settings(cls, settings: Settings, *, store: Any = None, policy: CallPolicy | None = None) -> VaultClient:
        """Build from ``Settings`` (config/models.py): ``settings.vault`` (address, auth, token, aws_role,
        aws_mount, aws_header_value, namespace, mount, kv_version, ca_cert, insecure_skip_verify)
        and ``settings.reconciler.apis.vault`` / ``retry`` for the resilience policy (rate limit
        and circuit breaker shared through ``store`` when given)."""

        v = settings.vault
        if v.address is None:
            raise ConfigError("vault.address is not configured")
        api_policy = ApiPolicy.from_settings(settings, "vault")
        ca_path = _ca_file(_reveal(v.ca_cert))
        skip = bool(v.skip_ssl_validation)
        kv = str(v.kv_version or "auto")
        return cls(str(v.address), token=_reveal(v.token), auth=v.auth,
                   aws_role=v.aws_role, aws_mount=v.aws_mount or "aws",
                   aws_header_value=v.aws_header_value, namespace=v.namespace,
                   mount=v.mount or "secret", ca_cert=ca_path, verify=not skip,
                   timeout=api_policy.timeout, kv_version=None if kv == "auto" else int(kv),
                   policy=policy or Resilience(api_policy, store),
                   session=make_session(api_policy, ca_cert=ca_path, skip_ssl_validation=skip),
                   health_timeout=api_policy.health_timeout)

    def __repr__(self) -> str:  # never the token
        return f"VaultClient(address={self.address!r}, mount={self.mount!r}, auth={self.auth!r})"

    # ------------------------------------------------------------------ plumbing

    def _split(self, path: str) -> str:
        """Logical path -> path inside the mount; refuses anything that is not plainly under it."""
        if not isinstance(path, str):
            raise InvalidInput(f"vault path {path!r} is not a string")
        if not path.startswith(self.mount + "/"):
            raise InvalidInput(f"vault path {path!r} is not under the mount '{self.mount}/'")
        rel = path[len(self.mount) + 1:]
        segments = rel.split("/")
        if not rel or any(s in ("", ".", "..") or not _SEGMENT_RE.match(s) for s in segments):
            raise InvalidInput(f"vault path {path!r} is invalid: expected '{self.mount}/<segment>/...' "
                               "without empty, '.' or '..' segments or control characters")
        return rel

    def _folder(self, path: str) -> str:
        """Logical folder (with or without trailing '/', or the bare mount) -> rel folder."""
        if path.rstrip("/") == self.mount:
            return ""
        return self._split(path.rstrip("/")) + "/"

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Session hook: the last answer this thread got (hvac's exceptions keep no status)."""
        self._answers.last = response

    def _last_answer(self) -> requests.Response | None:
        return getattr(self._answers, "last", None)

    def _map_error(self, exc: BaseException, op: str, path: str) -> ExternalAPIError:
        where = f"Vault {op} {path}" if path else f"Vault {op}"
        if isinstance(exc, hx.VaultError):
            answer = self._last_answer()
            status = answer.status_code if answer is not None and answer.status_code >= 400 else None
            status = status or getattr(exc, "status_code", None) or _HVAC_STATUS.get(type(exc))
            if status is not None:
                return self._status_error(int(status), _errors_text(exc), answer, where, op, path)

        if isinstance(exc, requests.exceptions.SSLError) and is_certificate_error(exc):
            return Unavailable(f"{where}: TLS verification of {self.address} failed (check vault.ca_cert)",
                               api="vault")
        if isinstance(exc, requests.exceptions.Timeout):
            err = Unavailable(f"{where}: timed out talking to {self.address}", api="vault")
        elif isinstance(exc, requests.exceptions.ConnectionError):
            err = Unavailable(f"{where}: cannot connect to {self.address}", api="vault")
        else:
            return Unavailable(f"{where}: {type(exc).__name__}", api="vault")
        err.not_sent = never_sent(exc)  # a write that never got through may be sent again
        return err

    def _status_error(self, status: int, text: str, answer: requests.Response | None, where: str, op: str,
                      path: str) -> ExternalAPIError:
        """One domain error per HTTP status of Vault's answer (the message names the path, never data)."""
        reason = " ".join(text.split())[:200]
        if status == 400:
            if "check-and-set" in text:
                return CasConflict(f"{where}: check-and-set conflict (the secret changed since it was read)",
                                   api="vault", status=400)
            return Rejected(f"{where}: rejected by Vault (400): {reason or 'invalid request'}", api="vault",
                            status=400)
        if status == 401:
            return Unauthorized(f"{where}: unauthorized (401)", api="vault", status=401)
        if status == 403:
            capability = _CAPABILITY.get(op, op)
            return PermissionDenied(f"{where}: permission denied (403): the token's policy needs '{capability}' "
                                    f"on {path or 'this path'}", api="vault", status=403)
        if status == 404:
            return NotFound(f"{where}: not found (404)", api="vault", status=404)
        if status in (409, 412):
            return CasConflict(f"{where}: conflict ({status}): {reason or 'the secret changed'}", api="vault",
                               status=status)
        if status == 413:
            size = str(answer.request.headers.get("Content-Length") or "") if answer is not None and answer.request \
                else None
            return TooLarge(f"{where}: request too large for Vault (413{', ' + size + ' bytes' if size else ''}; "
                            "over the server's max_request_size)", api="vault", status=413)
        if status == 429:
            after = getattr(error_for_status(answer, "vault", where), "retry_after", None) if answer is not None \
                else None
            return RateLimited(f"{where}: rate limited by Vault (429)", api="vault", status=429, retry_after=after)
        if status == 503 and "sealed" in text.lower():
            return VaultSealed(f"{where}: Vault at {self.address} is sealed", api="vault", status=503)
        if status == 501:
            return Unavailable(f"{where}: Vault at {self.address} is not initialized (501)", api="vault", status=501)
        if status >= 500:
            return Unavailable(f"{where}: Vault error {status}" + (f": {reason}" if reason else ""), api="vault",
                               status=status)
        return ExternalAPIError(f"{where}: unexpected Vault answer {status}" + (f": {reason}" if reason else ""),
                                api="vault", status=status)

    def _call(self, op: str, path: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        def attempt() -> T:
            self._ensure_login()
            self._answers.last = None
            try:
                return fn()
            except (hx.VaultError, requests.exceptions.RequestException) as exc:
                if isinstance(exc, hx.Forbidden) and self.auth == "aws":
                    # the IAM-issued token may have expired: log in once more, then give up
                    self._login(force=True)
                    try:
                        return fn()
                    except (hx.VaultError, requests.exceptions.RequestException) as again:
                        raise self._map_error(again, op, path) from None
                raise self._map_error(exc, op, path) from None

        if self.policy is not None:
            if idempotent:
                return self.policy.call(attempt, what=f"vault {op} {path}".rstrip())
            return self.policy.call(attempt, what=f"vault {op} {path}".rstrip(), idempotent=False)
        return attempt()

    def _ensure_login(self) -> None:
        if not self._logged_in:
            self._login(force=False)

    def _login(self, *, force: bool) -> None:
        with self._login_lock:
            if self._logged_in and not force:
                return
            creds = self._aws["credentials"]
            if creds is None:
                import boto3  # the Lambda's role credentials; imported lazily (cold start)

                creds = boto3.Session().get_credentials()
            if creds is None:
                raise ConfigError("vault auth is 'aws' but no AWS credentials are available to sign the login")
            frozen = creds.get_frozen_credentials() if hasattr(creds, "get_frozen_credentials") else creds
            try:
                self._client.auth.aws.iam_login(frozen.access_key, frozen.secret_key, frozen.token,
                                                header_value=self._aws["header"], role=self._aws["role"],
                                                use_token=True, region=self._aws["region"],
                                                mount_point=self._aws["mount"])
            except hx.InvalidRequest as exc:
                raise Unauthorized(f"Vault AWS login for role {self._aws['role']!r} refused: "
                                   f"{_errors_text(exc)[:200]}", api="vault", status=400) from None
            except (hx.VaultError, requests.exceptions.RequestException) as exc:
                raise self._map_error(exc, "login", f"auth/{self._aws['mount']}/login") from None
            self._logged_in = True
            log.info("vault: logged in with AWS IAM role %s", self._aws["role"])

    # ------------------------------------------------------------------ status

    def health(self) -> dict[str, Any]:
        """``sys/health``; raises VaultSealed (503), Unavailable (not initialized, unreachable)."""
        def fn() -> dict[str, Any]:
            # timeouts.health_check bounds the probe (hvac's read_health_status takes no timeout)
            resp = self._client.adapter.get("/v1/sys/health", params={"standbyok": "true"}, raise_exception=False,
                                            timeout=self.health_timeout)
            if isinstance(resp, dict):
                return resp
            body: dict[str, Any] = {}
            with contextlib.suppress(ValueError):
                body = resp.json()
            if resp.status_code == 503 or body.get("sealed"):
                raise VaultSealed(f"Vault at {self.address} is sealed", api="vault", status=503)
            if resp.status_code == 501:
                raise Unavailable(f"Vault at {self.address} is not initialized", api="vault", status=501)
            if resp.status_code >= 400:
                raise Unavailable(f"Vault at {self.address} health answered {resp.status_code}", api="vault",
                                  status=resp.status_code)
            return body

        def unauthenticated() -> dict[str, Any]:
            try:
                return fn()
            except (hx.VaultError, requests.exceptions.RequestException) as exc:
                raise self._map_error(exc, "health", "sys/health") from None

        if self.policy is not None:
            return self.policy.call(unauthenticated, what="vault health")
        return unauthenticated()

    def use_kv_version(self, version: Any) -> None:
        """Take the KV version another step of this run already detected (1 or 2; anything else
        is ignored and the version is detected on first use)."""
        if self._kv_version is None and version in (1, 2):
            self._kv_version = version

    @property
    def kv_version(self) -> int:
        if self._kv_version is None:
            self._kv_version = self._detect_kv_version()
        return self._kv_version

    def _detect_kv_version(self) -> int:
        def from_mounts() -> int | None:
            mounts = self._client.sys.list_mounted_secrets_engines()
            entry = (mounts.get("data") or mounts).get(self.mount + "/")
            return None if entry is None else _version_of(entry)

        def from_ui() -> int | None:
            resp = self._client.adapter.get(f"/v1/sys/internal/ui/mounts/{self.mount}")
            data = resp.get("data") if isinstance(resp, dict) else None
            return _version_of(data) if data else None

        errors = []
        for name, probe in (("sys/mounts", from_mounts), (f"sys/internal/ui/mounts/{self.mount}", from_ui)):
            try:
                version = self._call("detect", name, probe)
            except (PermissionDenied, NotFound) as exc:
                errors.append(f"{name}: {type(exc).__name__}")
                continue
            if version is None:
                errors.append(f"{name}: no mount '{self.mount}/'")
                continue
            log.info("vault: mount %s/ is KV v%d", self.mount, version)
            return version
        raise ConfigError(f"cannot detect the KV version of mount '{self.mount}/' at {self.address} "
                          f"({'; '.join(errors)}); check vault.mount and the policy (read on sys/mounts)")

    def capabilities(self, api_path: str) -> list[str]:
        """What the token may do on ``api_path`` (as the HTTP API names it, e.g. ``secret/data/x``),
        from ``sys/capabilities-self``: ``read``, ``list``, ``create``, ``update``, ``delete``, ``root``..."""
        def fn() -> list[str]:
            resp = self._client.adapter.post("/v1/sys/capabilities-self", json={"paths": [api_path]})
            body = resp if isinstance(resp, dict) else {}
            data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else body
            caps = data.get(api_path, data.get("capabilities", []))
            return sorted(str(c) for c in caps) if isinstance(caps, list) else []

        return self._call("capabilities", "sys/capabilities-self", fn)

    def is_authenticated(self) -> bool:
        try:
            self._call("lookup-self", "auth/token/lookup-self", self._client.auth.token.lookup_self)
        except (PermissionDenied, Unauthorized):
            return False
        return True

    # ------------------------------------------------------------------ KV

    def read(self, path: str) -> tuple[dict[str, Any], int | None] | None:
        """``(data, version)`` of the latest version, ``None`` when absent or deleted.
        ``version`` is None on KV v1."""
        rel = self._split(path)
        kv = self.kv_version

        def fn() -> tuple[dict[str, Any], int | None] | None:
            try:
                if kv == 2:
                    resp = self._client.secrets.kv.v2.read_secret_version(
                        path=rel, mount_point=self.mount, raise_on_deleted_version=True)
                    body = resp["data"]
                    if body.get("data") is None:
                        return None
                    return dict(body["data"]), int(body["metadata"]["version"])
                resp = self._client.secrets.kv.v1.read_secret(path=rel, mount_point=self.mount)
                return dict(resp["data"]), None
            except hx.InvalidPath:
                return None

        return self._call("read", path, fn)

    def read_data(self, path: str) -> dict[str, Any] | None:
        got = self.read(path)
        return got[0] if got else None

    def write(self, path: str, data: Mapping[str, Any], *, cas: int | None = None) -> int | None:
        """Write the complete secret. ``cas``: 0 = must not exist, N = current version must be N,
        None = unconditional. Returns the new version (None on KV v1). KV v1 has no cas: the
        adapter compares with a read first (not atomic; documented)."""
        rel = self._split(path)
        if not isinstance(data, Mapping):
            raise InvalidInput(f"vault write {path}: data must be a JSON object")
        if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int) or cas < 0):
            raise InvalidInput(f"vault write {path}: cas {cas!r} must be an integer >= 0")
        payload = dict(data)
        kv = self.kv_version
        if kv == 1 and cas is not None:
            exists = self.read(path) is not None
            if (cas == 0 and exists) or (cas > 0 and not exists):
                raise CasConflict(f"Vault write {path}: check-and-set conflict (KV v1 pre-check)", api="vault")

        def fn() -> int | None:
            if kv == 2:
                resp = self._client.secrets.kv.v2.create_or_update_secret(
                    path=rel, secret=payload, cas=cas, mount_point=self.mount)
                return int(resp["data"]["version"])
            self._client.secrets.kv.v1.create_or_update_secret(path=rel, secret=payload, mount_point=self.mount)
            return None

        # a cas write repeated after it landed is a clean conflict; an unconditional one is not safe
        return self._call("write", path, fn, idempotent=cas is not None)

    def list(self, folder: str) -> list[str]:
        """Keys directly under ``folder`` (relative; sub-folders end with '/'); [] when empty."""
        rel = self._folder(folder)
        kv = self.kv_version

        def fn() -> list[str]:
            try:
                if kv == 2:
                    resp = self._client.secrets.kv.v2.list_secrets(path=rel, mount_point=self.mount)
                else:
                    resp = self._client.secrets.kv.v1.list_secrets(path=rel, mount_point=self.mount)
            except hx.InvalidPath:
                return []
            return sorted(str(k) for k in ((resp or {}).get("data") or {}).get("keys") or [])

        return self._call("list", folder, fn)

    def list_recursive(self, folder: str, *, exclude: Iterable[str] = ()) -> builtins.list[str]:
        """Every secret path (logical) below ``folder``; folders in ``exclude`` (logical,
        ending with '/') are not descended into."""
        return secrets_below(self.list, folder, exclude)

    def read_tree(self, prefix: str, *, exclude: Iterable[str] = (), known: Mapping[str, Any] | None = None) -> Tree:
        """``{path: (data, version)}`` for ``prefix`` itself (if it is a secret) and every secret
        below it, except under ``exclude`` folders. Keys deleted between list and read are skipped.
        ``known`` holds paths the caller just read (``{path: (data, version)}``): they are
        listed but not read again."""
        self._split(prefix)
        known = known or {}
        out: Tree = {}
        for path in [prefix, *self.list_recursive(prefix, exclude=exclude)]:
            got = known[path] if path in known else self.read(path)
            if got is not None:
                out[path] = got
        return out

    def delete(self, path: str) -> None:
        """Remove a backup record and all its versions. Only backup paths are accepted
        (``<mount>/backups/...`` or ``<mount>/<id>/backups/...``): the reconciler deletes
        nothing else."""
        rel = self._split(path)
        parts = rel.split("/")
        if not ((len(parts) >= 3 and parts[0] == "backups") or (len(parts) >= 3 and parts[1] == "backups")):
            raise InvalidInput(f"refusing to delete {path}: only backups ({self.mount}/backups/<id>/<sha> or "
                               f"{self.mount}/<id>/backups/<sha>) may be deleted")
        self._delete_all_versions(path, rel)


    def _delete_all_versions(self, path: str, rel: str) -> None:
        """Remove ``rel`` and every version of it: the one delete both guarded entry points share."""
        kv = self.kv_version

        def fn() -> None:
            if kv == 2:
                self._client.secrets.kv.v2.delete_metadata_and_all_versions(path=rel, mount_point=self.mount)
            else:
                self._client.secrets.kv.v1.delete_secret(path=rel, mount_point=self.mount)

        self._call("delete", path, fn)

    def delete_archived(self, path: str, *, backup_path: str) -> None:
        """Remove one path of an instance's tree (all versions) that ``backup_path`` holds: the
        auto-remediation archive, and nothing else. The path must be ``<mount>/<uuid>`` or below
        it (never ``db``, never a backup) and the backup record must exist and be the same
        instance's, so data leaves Vault only with its verified backup in place."""
        rel = self._split(path)
        parts = rel.split("/")
        uid = parts[0]
        if not _UUID_RE.match(uid) or (len(parts) > 1 and parts[1] == "backups"):
            raise InvalidInput(f"refusing to archive {path}: only an instance's own paths ({self.mount}/<uuid> and "
                               "below, not its backups) may be archived")
        backup_rel = self._split(backup_path).split("/")
        if len(backup_rel) != 3 or backup_rel[0] != "backups" or backup_rel[1] != uid:
            raise InvalidInput(f"refusing to archive {path}: {backup_path} is not a backup of instance {uid}")
        if self.read(backup_path) is None:
            raise InvalidInput(f"refusing to archive {path}: its backup {backup_path} does not exist")
        self._delete_all_versions(path, rel)


def _reveal(value: Any) -> Any:
    """A config Secret (``.get()``) or a plain value."""
    getter = getattr(value, "get", None)
    return getter() if callable(getter) and not isinstance(value, dict) else value


def _ca_file(ca: str | None) -> str | None:
    """requests verifies against a file: PEM text from the config is written to /tmp once."""
    if not ca or "-----BEGIN" not in ca:
        return ca
    path = os.path.join(tempfile.gettempdir(), f"vault-ca-{hashlib.sha256(ca.encode()).hexdigest()[:16]}.pem")
    if not os.path.exists(path):
        with open(path, "w", encoding="ascii") as fh:
            fh.write(ca)
    return path


def _version_of(entry: Mapping[str, Any]) -> int | None:
    kind = entry.get("type")
    if kind not in ("kv", "generic"):
        return None
    options = entry.get("options") or {}
    return 2 if str(options.get("version", "1")) == "2" else 1
