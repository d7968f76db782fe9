"""A HashiCorp Vault emulator: KV v2 and v1 mounts, health, mounts, token and AWS IAM login.

Wire formats follow ``shared/api-reference/vault-kv.md``. Details that clients depend on:

* every JSON answer carries ``Content-Type: application/json`` exactly (hvac only parses
  error bodies with that exact header);
* a soft-deleted or destroyed KV v2 version answers 404 with the full envelope
  (``data.data = null`` plus the version's metadata), not ``{"errors": []}``;
* LIST (the verb, or ``GET ?list=true``) answers keys relative to the folder, sub-folders
  with a trailing ``/``, sorted; an empty folder is 404 ``{"errors": []}``;
* sealed: 503 ``Vault is sealed`` everywhere except ``sys/health`` and ``sys/seal-status``;
* a request body over ``max_request_size`` (32 MiB, Vault's default) answers 413;
* ``deny(prefix, *capabilities)`` makes a policy refuse those capabilities below a path (403).

State is held in dict-of-dicts indexes (a folder -> children index for LIST), so a world
with hundreds of thousands of paths loads in seconds and lists without scanning.
Requests are served concurrently; one lock guards the state.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from mockstack.base import Emulator, Request, Response, json_response, text_response

VAULT_VERSION = "1.16.3"
DEFAULT_MAX_VERSIONS = 10
MAX_REQUEST_SIZE = 32 * 1024 * 1024  # Vault's listener default max_request_size (bytes)
KV2_OPS = ("data", "metadata", "delete", "undelete", "destroy", "subkeys")
V1_LEASE_DURATION = 2764800  # the mount default docs samples show (32 days)
INVALID_V2_PATH = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. "
    "If using the Vault CLI, use 'vault kv get' for this operation."
)
ROOT_V2_WARNING = "Non-listing operations on the root of a K/V v2 mount are not supported."
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_HEALTH_CODES = ("activecode", "standbycode", "drsecondarycode", "performancestandbycode", "sealedcode",
                 "uninitcode")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


class _Error(Exception):
    """An error answer: status plus the ``errors`` list (or a full body)."""

    def __init__(self, status: int, *errors: str, body: Any = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors)
        self.body = body


def _rfc3339(epoch: float) -> str:
    whole = int(epoch)
    nanos = int(round((epoch - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


def parse_duration(value: Any, name: str) -> int:
    """A Go duration string (``"3h25m19s"``, ``"0s"``) or a number of seconds -> whole seconds."""
    if isinstance(value, bool):
        raise _Error(400, f"{name}: expected a duration such as \"1h30m\" or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise _Error(400, f"{name}: must not be negative")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        pos, total = 0, 0.0
        for match in _DURATION_RE.finditer(text):
            if match.start() != pos:
                break
            number, unit = float(match.group(1)), match.group(2)
            total += number * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
            pos = match.end()
        if text and pos == len(text):
            return int(total)
    raise _Error(400, f"{name}: invalid duration {value!r}; expected a Go duration such as \"3h25m19s\" or \"0s\"")


def format_duration(seconds: int) -> str:
    """Whole seconds as Go's ``time.Duration.String()`` prints them."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class _Version:
    __slots__ = ("data", "created", "deleted_at", "destroyed")

    def __init__(self, data: dict | None, created: float, deleted_at: float | None = None) -> None:
        self.data = data
        self.created = created
        self.deleted_at = deleted_at
        self.destroyed = False

    def gone(self, now: float) -> bool:
        return self.destroyed or (self.deleted_at is not None and self.deleted_at <= now)

    def short(self) -> dict:
        return {"created_time": _rfc3339(self.created),
                "deletion_time": _rfc3339(self.deleted_at) if self.deleted_at is not None else "",
                "destroyed": self.destroyed}


class _Secret:
    __slots__ = ("versions", "current", "oldest", "max_versions", "cas_required", "delete_after", "custom",
                 "created", "updated")

    def __init__(self, now: float) -> None:
        self.versions: dict[int, _Version] = {}
        self.current = 0
        self.oldest = 0
        self.max_versions = 0
        self.cas_required = False
        self.delete_after = 0
        self.custom: dict[str, str] | None = None
        self.created = now
        self.updated = now

    def version_meta(self, number: int) -> dict:
        v = self.versions[number]
        out = v.short()
        return {"created_time": out["created_time"], "custom_metadata": self.custom,
                "deletion_time": out["deletion_time"], "destroyed": v.destroyed, "version": number}


class _Tree:
    """Folder -> direct children index (``"a/"`` -> {``"b"``, ``"c/"``}); root folder is ``""``."""

    __slots__ = ("children", "_sorted")

    def __init__(self) -> None:
        self.children: dict[str, set[str]] = {}
        self._sorted: dict[str, list[str]] = {}  # LIST answers, dropped when a folder changes

    def _add(self, folder: str, entry: str) -> None:
        kids = self.children.get(folder)
        if kids is None:
            kids = self.children[folder] = set()
        if entry not in kids:
            kids.add(entry)
            self._sorted.pop(folder, None)

    def add(self, path: str) -> None:
        parts = path.split("/")
        folder = ""
        for part in parts[:-1]:
            self._add(folder, part + "/")
            folder += part + "/"
        self._add(folder, parts[-1])

    def remove(self, path: str) -> None:
        parts = path.split("/")
        folders = [""]
        for part in parts[:-1]:
            folders.append(folders[-1] + part + "/")
        entry = parts[-1]
        for folder in reversed(folders):
            kids = self.children.get(folder)
            if kids is None:
                return
            kids.discard(entry)
            self._sorted.pop(folder, None)
            if kids:
                return
            del self.children[folder]
            entry = folder[:-1].rsplit("/", 1)[-1] + "/" if folder else ""

    def list(self, folder: str) -> list[str]:
        cached = self._sorted.get(folder)
        if cached is None:
            cached = self._sorted[folder] = sorted(self.children.get(folder, ()))
        return cached


@dataclass
class _Mount:
    name: str  # without trailing slash
    version: int  # 1 or 2
    uuid: str
    accessor: str
    secrets: dict[str, Any] = field(default_factory=dict)  # v2: path -> _Secret; v1: path -> dict
    tree: _Tree = field(default_factory=_Tree)
    max_versions: int = 0
    cas_required: bool = False
    delete_after: int = 0

    def describe(self) -> dict:
        return {"accessor": self.accessor,
                "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
                "deprecation_status": "supported", "description": "key/value secret storage",
                "external_entropy_access": False, "local": False,
                "options": {"version": str(self.version)}, "plugin_version": "",
                "running_plugin_version": "v0.17.0+builtin",
                "running_sha256": "", "seal_wrap": False, "type": "kv", "uuid": self.uuid}


def _is_list(request: Request) -> bool:
    return request.method == "LIST" or (request.method == "GET" and request.arg("list", "") in _TRUE)


class VaultEmulator(Emulator):
    """Emulates one Vault server.

    ``world_vault`` maps logical paths (``secret/db``, ``secret/<id>/credentials``) to data;
    each is seeded as version 1 of its KV v2 key (or as the value on a KV v1 mount).
    ``token`` is the root token; ``aws_role`` enables ``auth/aws/login`` for that role.
    ``extra_mounts`` maps further KV mount names to their version (1 or 2).
    """

    api = "vault"

    def __init__(self, world_vault: dict | None = None, *, token: str, kv_version: int = 2, mount: str = "secret",
                 aws_role: str | None = None, extra_mounts: dict[str, int] | None = None,
                 aws_token_ttl: int = 1800) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError("VaultEmulator: token must be a non-empty string")
        self._lock = threading.RLock()
        self.root_token = token
        self.aws_role = aws_role
        self.aws_token_ttl = aws_token_ttl
        self.sealed = False
        # real Vault's listener default (max_request_size): a larger body is answered 413
        self.max_request_size = MAX_REQUEST_SIZE
        # {logical path prefix: capabilities denied}: the token's policy lacks them (403)
        self.denied: dict[str, set[str]] = {}
        self.standby = False
        self.performance_standby = False
        self.initialized = True
        self.cluster_id = str(uuid.UUID(int=0x995F749A9BC3FBE0A185CCBA6999FC73))
        self.cluster_name = "vault-cluster-mockstack"
        self._started = time.time()
        self._tokens: dict[str, dict] = {}
        self.mounts: dict[str, _Mount] = {}
        self._order: list[str] = []
        self._order_key = -1
        for name, version in {mount: kv_version, **(extra_mounts or {})}.items():
            self.add_mount(name, version)
        if world_vault:
            self.load(world_vault)

    # ------------------------------------------------------------------ python API

    def add_mount(self, name: str, version: int = 2) -> None:
        name = name.strip("/")
        if not name or version not in (1, 2):
            raise ValueError(f"VaultEmulator: bad mount {name!r} version {version!r}; need a name and version 1 or 2")
        ident = uuid.uuid5(uuid.NAMESPACE_URL, f"mockstack-vault-mount:{name}")
        with self._lock:
            self.mounts[name] = _Mount(name, version, str(ident), f"kv_{ident.hex[:8]}")

    def load(self, world_vault: dict) -> None:
        """Seed logical paths (each becomes version 1). Raises ValueError naming a bad entry."""
        if not isinstance(world_vault, dict):
            raise ValueError("vault: expected an object mapping logical paths to data")
        now = time.time()
        # hundreds of thousands of small objects: without pausing the cyclic GC, repeated
        # full collections of the growing heap double the load time (nothing here is cyclic)
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with self._lock:
                self._load(world_vault, now)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _load(self, world_vault: dict, now: float) -> None:
        # validate everything first: a bad entry must not leave half a world behind
        entries = []
        for logical, data in world_vault.items():
            mount, path = self._split_logical(logical)
            if not isinstance(data, dict):
                raise ValueError(f"vault[{logical!r}]: expected an object of secret data, got {type(data).__name__}")
            entries.append((mount, path, data))
        for mount, path, data in entries:
            if mount.version == 1:
                if path not in mount.secrets:
                    mount.tree.add(path)
                mount.secrets[path] = dict(data)
                continue
            secret = mount.secrets.get(path)
            if secret is None:
                secret = mount.secrets[path] = _Secret(now)
                mount.tree.add(path)
            secret.current += 1
            secret.versions[secret.current] = _Version(dict(data), now)

    def _split_logical(self, logical: Any) -> tuple[_Mount, str]:
        if not isinstance(logical, str):
            raise ValueError(f"vault: path {logical!r} is not a string")
        clean = logical.strip("/")
        for name in self._mount_order():
            if clean.startswith(name + "/") and len(clean) > len(name) + 1:
                path = clean[len(name) + 1:]
                if "//" in path or path.endswith("/"):
                    break
                return self.mounts[name], path
        raise ValueError(f"vault[{logical!r}]: not a key under a known KV mount "
                         f"({', '.join(m + '/' for m in sorted(self.mounts))}); expected '<mount>/<path>'")

    def read(self, logical: str, version: int | None = None) -> dict | None:
        """The data a client would read (latest or ``version``), or None when absent/deleted."""
        mount, path = self._split_logical(logical)
        with self._lock:
            if mount.version == 1:
                data = mount.secrets.get(path)
                return dict(data) if data is not None else None
            secret = mount.secrets.get(path)
            if secret is None:
                return None
            v = secret.versions.get(version or secret.current)
            return dict(v.data) if v is not None and not v.gone(time.time()) else None

    def current_version(self, logical: str) -> int:
        """Current version number of a KV v2 key (0 when absent)."""
        mount, path = self._split_logical(logical)
        with self._lock:
            secret = mount.secrets.get(path) if mount.version == 2 else None
            return secret.current if secret else 0

    def snapshot(self) -> dict[str, dict]:
        """``{logical path: latest readable data}`` over every mount (deleted/destroyed left out).

        The data dicts are copies at the top level; nested values are shared, never mutated here.
        """
        now = time.time()
        out: dict[str, dict] = {}
        gc_was_enabled = gc.isenabled()
        gc.disable()  # one small dict per path; see load()
        try:
            with self._lock:
                self._snapshot_into(out, now)
        finally:
            if gc_was_enabled:
                gc.enable()
        return out

    def _snapshot_into(self, out: dict[str, dict], now: float) -> None:
        for mount in self.mounts.values():
            prefix = mount.name + "/"
            if mount.version == 1:
                for path, data in mount.secrets.items():
                    out[prefix + path] = dict(data)
                continue
            for path, secret in mount.secrets.items():
                v = secret.versions.get(secret.current)
                if v is not None and not v.gone(now):
                    out[prefix + path] = dict(v.data)

    # ------------------------------------------------------------------ HTTP

    def deny(self, prefix: str, *capabilities: str) -> None:
        """Refuse ``capabilities`` (read, list, create, update, patch, delete) on logical paths
        starting with ``prefix`` (e.g. ``secret/<id>/bindings``) with Vault's 403, as a policy
        without them would; no capabilities: clear the rule."""
        with self._lock:
            if capabilities:
                self.denied[prefix] = set(capabilities)
            else:
                self.denied.pop(prefix, None)

    def _check_policy(self, mount: _Mount, rest: str, request: Request) -> None:
        if not self.denied:
            return
        op, _, path = rest.partition("/")
        logical = f"{mount.name}/{path if mount.version == 2 and op in KV2_OPS else rest}".rstrip("/")
        method = request.method
        wanted = ("list" if _is_list(request) else "read" if method == "GET" else "patch" if method == "PATCH"
                  else "delete" if method == "DELETE" else "create")
        wanted_all = {wanted, "update"} if wanted == "create" else {wanted}
        with self._lock:
            for prefix, caps in self.denied.items():
                if logical.startswith(prefix) and caps >= wanted_all:
                    raise _Error(403, "1 error occurred:\n\t* permission denied\n\n")

    def _capabilities_self(self, request: Request) -> Response:
        """``POST sys/capabilities-self {"paths": [...]}``: per API path what the token's policy
        allows: everything but what :meth:`deny` took away (``root`` when nothing is denied)."""
        if request.method not in ("POST", "PUT"):
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        body = request.json() or {}
        paths = body.get("paths") or ([body["path"]] if body.get("path") else [])
        if not isinstance(paths, list) or not paths:
            raise _Error(400, "1 error occurred:\n\t* missing paths\n\n")
        everything = {"create", "read", "update", "patch", "delete", "list"}
        out: dict[str, list[str]] = {}
        for api_path in paths:
            mount, rest = self._find_mount(str(api_path))
            if mount is None:
                out[api_path] = ["deny"]
                continue
            op, _, sub = rest.partition("/")
            logical = f"{mount.name}/{sub if mount.version == 2 and op in KV2_OPS else rest}".rstrip("/")
            with self._lock:
                taken = set().union(*[c for p, c in self.denied.items() if logical.startswith(p)]) \
                    if self.denied else set()
            out[api_path] = ["root"] if not taken else sorted(everything - taken) or ["deny"]
        return self._envelope(200, {**out, "capabilities": out[paths[0]]}, mount_type="system")

    def handle(self, request: Request) -> Response:
        if len(request.body or b"") > self.max_request_size:
            return json_response(413, {"errors": ["http: request body too large"]})
        try:
            return self._route(request)
        except _Error as err:
            if err.body is not None:
                return json_response(err.status, err.body)
            return json_response(err.status, {"errors": err.errors})

    def fault_response(self, status: int, headers: dict[str, str]) -> Response:
        """Injected faults answer in Vault's error shape."""
        text = {400: "1 error occurred:\n\t* invalid request\n\n",
                403: "1 error occurred:\n\t* permission denied\n\n",
                409: "1 error occurred:\n\t* conflict\n\n",
                412: "required index state not present",
                429: "request rate limited", 503: "Vault is unavailable"}.get(status, f"injected fault {status}")
        return json_response(status, {"errors": [text]}, headers=headers)

    def _route(self, request: Request) -> Response:
        raw = unquote(request.path)
        if not raw.startswith("/v1/"):
            return text_response(404, "404 page not found\n")
        path = re.sub("/{2,}", "/", raw[len("/v1/"):])
        if path == "sys/health":
            return self._health(request)
        if path == "sys/seal-status" and request.method == "GET":
            return json_response(200, self._seal_status())
        if self.sealed:
            raise _Error(503, "Vault is sealed")
        if path == "sys/init" and request.method == "GET":
            return json_response(200, {"initialized": self.initialized})
        if path.rstrip("/") == "auth/aws/login":
            return self._aws_login(request)
        token_info = self._authenticate(request)
        if path.rstrip("/") in ("auth/token/lookup-self",):
            if request.method not in ("GET", "POST", "PUT"):
                raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
            return self._envelope(200, token_info["lookup"](), mount_type="token")
        if path.rstrip("/") == "sys/capabilities-self":
            return self._capabilities_self(request)
        if path.rstrip("/") == "sys/mounts":
            return self._sys_mounts(request)
        if path.startswith("sys/mounts/"):
            return self._sys_mount(path[len("sys/mounts/"):], request)
        if path.startswith("sys/internal/ui/mounts/"):
            return self._ui_mount(path[len("sys/internal/ui/mounts/"):], request)
        mount, rest = self._find_mount(path)
        if mount is None:
            raise _Error(404, f"no handler for route \"{path}\". route entry not found.")
        self._check_policy(mount, rest, request)
        if mount.version == 1:
            return self._kv1(mount, rest, request)
        return self._kv2(mount, rest, request)

    def _mount_order(self) -> list[str]:
        """Mount names, longest first (nested mounts win); cached until mounts change."""
        if self._order_key != len(self.mounts):
            self._order = sorted(self.mounts, key=len, reverse=True)
            self._order_key = len(self.mounts)
        return self._order

    def _find_mount(self, path: str) -> tuple[_Mount | None, str]:
        for name in self._mount_order():
            if path == name or path.startswith(name + "/"):
                return self.mounts[name], path[len(name) + 1:]
        return None, ""

    def _envelope(self, status: int, data: Any, *, mount_type: str = "kv", warnings: list[str] | None = None,
                  auth: Any = None, lease_duration: int = 0) -> Response:
        return json_response(status, self._envelope_body(data, mount_type=mount_type, warnings=warnings, auth=auth,
                                                         lease_duration=lease_duration))

    @staticmethod
    def _envelope_body(data: Any, *, mount_type: str = "kv", warnings: list[str] | None = None, auth: Any = None,
                       lease_duration: int = 0) -> dict:
        return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                "lease_duration": lease_duration, "data": data, "wrap_info": None, "warnings": warnings,
                "auth": auth, "mount_type": mount_type}

    @staticmethod
    def _body(request: Request) -> dict:
        if not request.body.strip():
            return {}
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            raise _Error(400, f"failed to parse JSON input: {exc}") from None
        if not isinstance(body, dict):
            raise _Error(400, "failed to parse JSON input: the request body must be a JSON object")
        return body

    # ------------------------------------------------------------------ auth

    def _authenticate(self, request: Request) -> dict:
        token = request.headers.get("x-vault-token")
        if not token:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
        now = time.time()
        if token and secrets.compare_digest(token, self.root_token):
            return {"lookup": lambda: self._lookup_root()}
        with self._lock:
            info = self._tokens.get(token or "")
        if info is None or info["expires"] <= now:
            raise _Error(403, "permission denied")
        return {"lookup": lambda: self._lookup_issued(token, info)}

    def _lookup_root(self) -> dict:
        return {"accessor": "root-accessor-mockstack", "creation_time": int(self._started), "creation_ttl": 0,
                "display_name": "root", "entity_id": "", "expire_time": None, "explicit_max_ttl": 0,
                "id": self.root_token, "meta": None, "num_uses": 0, "orphan": True, "path": "auth/token/root",
                "policies": ["root"], "renewable": False, "ttl": 0, "type": "service"}

    @staticmethod
    def _lookup_issued(token: str, info: dict) -> dict:
        now = time.time()
        return {"accessor": info["accessor"], "creation_time": int(info["created"]),
                "creation_ttl": info["ttl"], "display_name": f"aws-{info['role']}", "entity_id": info["entity_id"],
                "expire_time": _rfc3339(info["expires"]), "explicit_max_ttl": 0, "id": token,
                "identity_policies": [], "issue_time": _rfc3339(info["created"]), "meta": info["metadata"],
                "num_uses": 0, "orphan": True, "path": "auth/aws/login", "policies": info["policies"],
                "renewable": True, "ttl": max(0, int(info["expires"] - now)), "type": "service"}

    def _aws_login(self, request: Request) -> Response:
        if self.aws_role is None:
            raise _Error(404, "no handler for route \"auth/aws/login\". route entry not found.")
        if request.method not in ("POST", "PUT"):
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        body = self._body(request)
        method = body.get("iam_http_request_method")
        if not method:
            raise _Error(400, "missing iam_http_request_method, which is required for the iam auth method "
                              "(accepted: an HTTP method such as \"POST\")")
        if method != "POST":
            raise _Error(400, f"iam_http_request_method {method!r} is not supported; only \"POST\" to "
                              "sts GetCallerIdentity is accepted")

        def b64(name: str) -> str:
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise _Error(400, f"missing {name}, which is required for the iam auth method (base64 text)")
            try:
                return base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise _Error(400, f"failed to base64 decode {name}") from None

        url = urlsplit(b64("iam_request_url"))
        if url.scheme != "https" or not url.hostname or not url.hostname.startswith("sts"):
            raise _Error(400, "iam_request_url must be an https STS endpoint such as https://sts.amazonaws.com/")
        if "Action=GetCallerIdentity" not in b64("iam_request_body"):
            raise _Error(400, "iam_request_body must be an sts:GetCallerIdentity request "
                              "(Action=GetCallerIdentity&Version=2011-06-15)")
        try:
            headers = json.loads(b64("iam_request_headers"))
        except ValueError:
            raise _Error(400, "iam_request_headers is not a base64-encoded JSON object") from None
        if not isinstance(headers, dict):
            raise _Error(400, "iam_request_headers is not a base64-encoded JSON object")
        lower = {str(k).lower(): (v[0] if isinstance(v, list) and v else v) for k, v in headers.items()}
        authz = lower.get("authorization")
        if not isinstance(authz, str) or not authz.startswith("AWS4-HMAC-SHA256 "):
            raise _Error(400, "iam_request_headers: Authorization must carry an AWS4-HMAC-SHA256 signature")
        if "x-amz-date" not in lower:
            raise _Error(400, "iam_request_headers: missing X-Amz-Date")
        match = re.search(r"Credential=([A-Z0-9]+)/", authz)
        role = body.get("role") or ""
        if role != self.aws_role:
            raise _Error(400, f"entry for role {role} not found")
        token = "hvs." + secrets.token_urlsafe(24)
        now = time.time()
        account = "123456789012"
        metadata = {"account_id": account, "auth_type": "iam", "role": role,
                    "client_user_id": (match.group(1) if match else "")[:4] + "..."}
        info = {"role": role, "created": now, "expires": now + self.aws_token_ttl, "ttl": self.aws_token_ttl,
                "policies": ["default", role], "accessor": str(uuid.uuid4()), "entity_id": str(uuid.uuid4()),
                "metadata": metadata}
        with self._lock:
            self._tokens[token] = info
        auth = {"client_token": token, "accessor": info["accessor"], "policies": info["policies"],
                "token_policies": info["policies"], "identity_policies": None, "metadata": metadata,
                "lease_duration": self.aws_token_ttl, "renewable": True, "entity_id": info["entity_id"],
                "token_type": "service", "orphan": True, "mfa_requirement": None, "num_uses": 0}
        return self._envelope(200, None, auth=auth, mount_type="aws")

    # ------------------------------------------------------------------ sys

    def _health(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        codes = {"activecode": 200, "standbycode": 429, "drsecondarycode": 472, "performancestandbycode": 473,
                 "sealedcode": 503, "uninitcode": 501}
        for name in _HEALTH_CODES:
            raw = request.arg(name)
            if raw is not None:
                try:
                    codes[name] = int(raw)
                except ValueError:
                    raise _Error(400, f"unable to parse {name} value: {raw!r} is not an HTTP status code") from None
                if not 100 <= codes[name] <= 999:
                    raise _Error(400, f"{name}: {raw} is not an HTTP status code (100-999)")
        standby_ok = request.arg("standbyok", "") in _TRUE
        perf_ok = request.arg("perfstandbyok", "") in _TRUE
        if not self.initialized:
            status = codes["uninitcode"]
        elif self.sealed:
            status = codes["sealedcode"]
        elif self.standby and not standby_ok:
            status = codes["standbycode"]
        elif self.performance_standby and not perf_ok:
            status = codes["performancestandbycode"]
        else:
            status = codes["activecode"]
        body: dict[str, Any] = {"clock_skew_ms": 0}
        if not self.sealed:
            body.update(cluster_id=self.cluster_id, cluster_name=self.cluster_name)
        body.update(echo_duration_ms=0, enterprise=False, initialized=self.initialized,
                    performance_standby=self.performance_standby, replication_dr_mode="disabled",
                    replication_performance_mode="disabled", sealed=self.sealed, server_time_utc=int(time.time()),
                    standby=self.standby, version=VAULT_VERSION)
        return json_response(status, body)

    def _seal_status(self) -> dict:
        body = {"type": "shamir", "initialized": self.initialized, "sealed": self.sealed, "t": 1, "n": 1,
                "progress": 0, "nonce": "", "version": VAULT_VERSION, "build_date": "2024-05-29T14:28:42Z",
                "migration": False, "recovery_seal": False, "storage_type": "inmem"}
        if not self.sealed:
            body.update(cluster_name=self.cluster_name, cluster_id=self.cluster_id)
        return body

    def _builtin_mounts(self) -> dict[str, dict]:
        def entry(kind: str, desc: str, accessor: str, local: bool = False) -> dict:
            return {"accessor": accessor, "config": {"default_lease_ttl": 0, "force_no_cache": False,
                                                     "max_lease_ttl": 0},
                    "description": desc, "external_entropy_access": False, "local": local, "options": None,
                    "seal_wrap": False, "type": kind,
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mockstack-vault-mount:{kind}"))}

        return {"cubbyhole/": entry("cubbyhole", "per-token private secret storage", "cubbyhole_eb4503de", True),
                "identity/": entry("identity", "identity store", "identity_8e2c9f0a"),
                "sys/": entry("system", "system endpoints used for control, policy and debugging", "system_5d6f8a41")}

    def _sys_mounts(self, request: Request) -> Response:
        if request.method != "GET":
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        with self._lock:
            data = {**self._builtin_mounts(), **{m.name + "/": m.describe() for m in self.mounts.values()}}
        body = self._envelope_body(data, mount_type="system")
        return json_response(200, {**data, **body})  # HTTPSysInjector: data keys also at the top level

    def _sys_mount(self, name: str, request: Request) -> Response:
        if request.method != "GET":
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        mount = self.mounts.get(name.strip("/"))
        if mount is None:
            raise _Error(400, f"No secret engine mount at {name.strip('/')}/")
        data = mount.describe()
        return json_response(200, {**data, **self._envelope_body(data, mount_type="system")})

    def _ui_mount(self, path: str, request: Request) -> Response:
        """What the Vault CLI reads to detect a mount's KV version (``vault kv get`` preflight)."""
        if request.method != "GET":
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        mount, _ = self._find_mount(path.strip("/"))
        if mount is None:  # Vault answers "permission denied" so the path cannot enumerate mounts
            raise _Error(403, "permission denied")
        data = {**mount.describe(), "path": mount.name + "/"}
        return json_response(200, {**data, **self._envelope_body(data, mount_type="system")})

    # ------------------------------------------------------------------ KV v1

    def _kv1(self, mount: _Mount, path: str, request: Request) -> Response:
        if _is_list(request):
            folder = path.strip("/")
            folder = folder + "/" if folder else ""
            with self._lock:
                keys = mount.tree.list(folder)
            if not keys:
                raise _Error(404)
            return self._envelope(200, {"keys": keys}, lease_duration=V1_LEASE_DURATION)
        key = path.strip("/")
        if not key:
            raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")
        if request.method == "GET":
            with self._lock:
                data = mount.secrets.get(key)
            if data is None:
                raise _Error(404)
            return self._envelope(200, data, lease_duration=V1_LEASE_DURATION)
        if request.method in ("POST", "PUT"):
            self._check_key(path)
            body = self._body(request)
            if not body:
                raise _Error(400, "missing data fields")
            with self._lock:
                if key not in mount.secrets:
                    mount.tree.add(key)
                mount.secrets[key] = body
            return Response(204)
        if request.method == "DELETE":
            with self._lock:
                if mount.secrets.pop(key, None) is not None:
                    mount.tree.remove(key)
            return Response(204)
        raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")

    @staticmethod
    def _check_key(path: str) -> str:
        key = path.strip("/")
        if not key or path.endswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise _Error(400, f"invalid key path {path!r}: expected a '/'-separated name with no empty, '.' or "
                              "'..' segments and no trailing '/'")
        return key

    # ------------------------------------------------------------------ KV v2

    def _kv2(self, mount: _Mount, rest: str, request: Request) -> Response:
        op, _, path = rest.partition("/")
        method = request.method
        if op == "config" and not path:
            return self._kv2_config(mount, request)
        if op == "metadata" and _is_list(request):
            return self._kv2_list(mount, path)
        if op in ("data", "metadata") and not path.strip("/"):
            return self._envelope(404, None, warnings=[ROOT_V2_WARNING])
        if op == "data":
            if method == "GET":
                return self._kv2_read(mount, path.strip("/"), request)
            if method in ("POST", "PUT"):
                return self._kv2_write(mount, self._check_key(path), request)
            if method == "PATCH":
                return self._kv2_patch(mount, self._check_key(path), request)
            if method == "DELETE":
                return self._kv2_delete_latest(mount, path.strip("/"))
        elif op in ("delete", "undelete", "destroy") and method in ("POST", "PUT"):
            return self._kv2_versions_op(mount, op, path.strip("/"), request)
        elif op == "metadata":
            if method == "GET":
                return self._kv2_read_metadata(mount, path.strip("/"))
            if method in ("POST", "PUT", "PATCH"):
                return self._kv2_write_metadata(mount, self._check_key(path), request)
            if method == "DELETE":
                return self._kv2_delete_metadata(mount, path.strip("/"))
        elif op not in ("data", "delete", "undelete", "destroy", "metadata", "config", "subkeys"):
            return self._envelope(404, None, warnings=[INVALID_V2_PATH])
        raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")

    def _kv2_config(self, mount: _Mount, request: Request) -> Response:
        if request.method == "GET":
            with self._lock:
                data = {"cas_required": mount.cas_required, "delete_version_after": format_duration(mount.delete_after),
                        "max_versions": mount.max_versions}
            return self._envelope(200, data)
        if request.method in ("POST", "PUT"):
            body = self._body(request)
            max_versions, cas_required, delete_after = self._parse_meta_fields(body)
            with self._lock:
                if max_versions is not None:
                    mount.max_versions = max_versions
                if cas_required is not None:
                    mount.cas_required = cas_required
                if delete_after is not None:
                    mount.delete_after = delete_after
            return Response(204)
        raise _Error(405, "1 error occurred:\n\t* unsupported operation\n\n")

    @staticmethod
    def _parse_meta_fields(body: dict) -> tuple[int | None, bool | None, int | None]:
        max_versions = body.get("max_versions")
        if max_versions is not None and (isinstance(max_versions, bool) or not isinstance(max_versions, int)
                                         or max_versions < 0):
            raise _Error(400, f"max_versions: expected a non-negative integer, got {max_versions!r}")
        cas_required = body.get("cas_required")
        if cas_required is not None and not isinstance(cas_required, bool):
            if cas_required in _TRUE or cas_required in _FALSE:
                cas_required = cas_required in _TRUE
            else:
                raise _Error(400, f"cas_required: expected a boolean, got {cas_required!r}")
        delete_after = body.get("delete_version_after")
        if delete_after is not None:
            delete_after = parse_duration(delete_after, "delete_version_after")
        return max_versions, cas_required, delete_after

    def _kv2_list(self, mount: _Mount, path: str) -> Response:
        folder = path.strip("/")
        folder = folder + "/" if folder else ""
        with self._lock:
            keys = mount.tree.list(folder)
        if not keys:
            raise _Error(404)
        return self._envelope(200, {"keys": keys})

    def _kv2_read(self, mount: _Mount, key: str, request: Request) -> Response:
        raw_version = request.arg("version", "0") or "0"
        try:
            wanted = int(raw_version)
        except ValueError:
            raise _Error(400, f"version: {raw_version!r} is not an integer version number") from None
        with self._lock:
            secret = mount.secrets.get(key)
            if secret is None:
                raise _Error(404)
            number = wanted or secret.current
            v = secret.versions.get(number)
            if v is None:
                raise _Error(404)
            meta = secret.version_meta(number)
            if v.gone(time.time()):
                body = self._envelope_body({"data": None, "metadata": meta}, mount_type="")
                raise _Error(404, body=body)
            data = v.data
        return self._envelope(200, {"data": data, "metadata": meta})

    def _apply_write(self, mount: _Mount, key: str, data: dict, cas: Any, cas_given: bool) -> dict:
        """Create the next version under the lock; returns its metadata. Caller holds the lock."""
        now = time.time()
        secret = mount.secrets.get(key)
        if cas_given:
            if isinstance(cas, bool) or not isinstance(cas, int):
                raise _Error(400, f"options.cas: expected an integer version number, got {cas!r}")
        elif (secret is not None and secret.cas_required) or mount.cas_required:
            raise _Error(400, "check-and-set parameter required for this call")
        current = secret.current if secret is not None else 0
        if cas_given and cas != current:
            raise _Error(400, "check-and-set parameter did not match the current version")
        if secret is None:
            secret = mount.secrets[key] = _Secret(now)
            mount.tree.add(key)
        delete_after = secret.delete_after or mount.delete_after
        secret.current += 1
        secret.updated = now
        secret.versions[secret.current] = _Version(data, now, now + delete_after if delete_after else None)
        keep = secret.max_versions or mount.max_versions or DEFAULT_MAX_VERSIONS
        if len(secret.versions) > keep:
            for number in sorted(secret.versions)[:len(secret.versions) - keep]:
                del secret.versions[number]
            secret.oldest = min(secret.versions)
        return secret.version_meta(secret.current)

    def _kv2_write(self, mount: _Mount, key: str, request: Request) -> Response:
        body = self._body(request)
        data = body.get("data")
        if data is None:
            raise _Error(400, "no data provided")
        if not isinstance(data, dict):
            raise _Error(400, f"data: expected a JSON object of key/value pairs, got {type(data).__name__}")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _Error(400, "options: expected an object such as {\"cas\": 1}")
        with self._lock:
            meta = self._apply_write(mount, key, data, options.get("cas"), "cas" in options)
        return self._envelope(200, meta)

    def _kv2_patch(self, mount: _Mount, key: str, request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip() != "application/merge-patch+json":
            raise _Error(415, f"PATCH requires Content-Type of application/merge-patch+json, provided {ctype}")
        body = self._body(request)
        patch = body.get("data")
        if not isinstance(patch, dict):
            raise _Error(400, "no data provided")
        options = body.get("options") or {}
        with self._lock:
            secret = mount.secrets.get(key)
            v = secret.versions.get(secret.current) if secret else None
            if v is None or v.gone(time.time()):
                raise _Error(404)
            meta = self._apply_write(mount, key, _merge_patch(v.data, patch), options.get("cas"),
                                     "cas" in options)
        return self._envelope(200, meta)

    def _kv2_delete_latest(self, mount: _Mount, key: str) -> Response:
        with self._lock:
            secret = mount.secrets.get(key)
            v = secret.versions.get(secret.current) if secret else None
            if v is not None and not v.destroyed and v.deleted_at is None:
                v.deleted_at = time.time()
                secret.updated = v.deleted_at
        return Response(204)

    def _kv2_versions_op(self, mount: _Mount, op: str, key: str, request: Request) -> Response:
        body = self._body(request)
        versions = body.get("versions")
        if not versions:
            raise _Error(400, "no version number provided" if op == "destroy" else "No version number provided")
        if not isinstance(versions, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                                     for n in versions):
            raise _Error(400, f"versions: expected a list of positive version numbers, got {versions!r}")
        now = time.time()
        with self._lock:
            secret = mount.secrets.get(key)
            if secret is None:
                return Response(204)
            for number in versions:
                v = secret.versions.get(number)
                if v is None:
                    continue
                if op == "delete" and not v.destroyed and v.deleted_at is None:
                    v.deleted_at = now
                elif op == "undelete" and not v.destroyed:
                    v.deleted_at = None
                elif op == "destroy":
                    v.destroyed = True
                    v.data = None
            secret.updated = now
        return Response(204)

    def _kv2_read_metadata(self, mount: _Mount, key: str) -> Response:
        with self._lock:
            secret = mount.secrets.get(key)
            if secret is None:
                raise _Error(404)
            data = {"cas_required": secret.cas_required, "created_time": _rfc3339(secret.created),
                    "current_version": secret.current, "custom_metadata": secret.custom,
                    "delete_version_after": format_duration(secret.delete_after),
                    "max_versions": secret.max_versions, "oldest_version": secret.oldest,
                    "updated_time": _rfc3339(secret.updated),
                    "versions": {str(n): v.short() for n, v in sorted(secret.versions.items())}}
        return self._envelope(200, data)

    def _kv2_write_metadata(self, mount: _Mount, key: str, request: Request) -> Response:
        if request.method == "PATCH":
            ctype = request.headers.get("content-type", "")
            if ctype.split(";")[0].strip() != "application/merge-patch+json":
                raise _Error(415, f"PATCH requires Content-Type of application/merge-patch+json, provided {ctype}")
        body = self._body(request)
        max_versions, cas_required, delete_after = self._parse_meta_fields(body)
        custom = body.get("custom_metadata")
        if custom is not None:
            if not isinstance(custom, dict):
                raise _Error(400, "custom_metadata: expected an object of string keys to string values")
            if len(custom) > 64:
                raise _Error(400, "custom_metadata: at most 64 keys are allowed")
            for k, v in custom.items():
                if len(k) > 128 or not k.isprintable():
                    raise _Error(400, f"custom_metadata: key {k[:40]!r} is longer than 128 bytes or not printable")
                if v is not None and (not isinstance(v, str) or len(v) > 512 or not v.isprintable()):
                    raise _Error(400, f"custom_metadata[{k!r}]: expected a printable string of at most 512 bytes")
        with self._lock:
            secret = mount.secrets.get(key)
            if secret is None:
                if request.method == "PATCH":
                    raise _Error(404)
                secret = mount.secrets[key] = _Secret(time.time())
                mount.tree.add(key)
            if max_versions is not None:
                secret.max_versions = max_versions
            if cas_required is not None:
                secret.cas_required = cas_required
            if delete_after is not None:
                secret.delete_after = delete_after
            if custom is not None:
                if request.method == "PATCH":
                    merged = {**(secret.custom or {}), **custom}
                    secret.custom = {k: v for k, v in merged.items() if v is not None} or None
                else:
                    secret.custom = {k: v for k, v in custom.items() if v is not None}
            secret.updated = time.time()
        return Response(204)

    def _kv2_delete_metadata(self, mount: _Mount, key: str) -> Response:
        with self._lock:
            if mount.secrets.pop(key, None) is not None:
                mount.tree.remove(key)
        return Response(204)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out
