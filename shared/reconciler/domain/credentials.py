"""Credential recovery: rebuild ``secret/<id>/credentials`` from a manifest and VM addresses.

The shapes are what each forge's ``credentials.yml`` renders (see forges.md). A value the
manifest does not hold literally (missing, or an unresolved ``((...))``) is never guessed:
recovery returns None with a reason that names the field, never a secret value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..models import VM
from .manifests import dig, find_job, instance_groups, is_placeholder, manifest_releases, parse_manifest
from .types import DEFAULT_RELEASE_SERVICES

SUPPORTED = ("redis", "postgresql", "rabbitmq")

_ALIASES = {
    "redis": "redis",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "pg": "postgresql",
    "rabbitmq": "rabbitmq",
    "rabbit": "rabbitmq",
}


class _Unrecoverable(Exception):
    """Internal: a needed value is not in the manifest; message is safe to show."""


def service_kind(
    service: str | None,
    releases: Iterable[str] = (),
    release_services: Mapping[str, str] | None = None,
) -> str | None:
    """Which recovery rule applies: from the service id (``redis``, ``postgresql-ha`` ...) or,
    failing that, from the deployment's releases."""
    if service:
        low = service.lower()
        if low in _ALIASES:
            return _ALIASES[low]
        for alias, kind in _ALIASES.items():
            if low.startswith(alias + "-") or low.startswith(alias + "_"):
                return kind
    mapping = release_services if release_services is not None else DEFAULT_RELEASE_SERVICES
    kinds = {mapping[r] for r in releases if r in mapping}
    kinds = {_ALIASES.get(k, k) for k in kinds}
    return kinds.pop() if len(kinds) == 1 else None


def _literal(value: Any, what: str) -> str:
    if value is None or value == "":
        raise _Unrecoverable(f"{what} not found in the manifest")
    if isinstance(value, (dict, list)):
        raise _Unrecoverable(f"{what} in the manifest is not a single value")
    if is_placeholder(value):
        raise _Unrecoverable(
            f"{what} is an unresolved ((placeholder)) in the manifest; its value is not recoverable from BOSH"
        )
    return str(value)


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    return None


def _port(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    if isinstance(value, str) and value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    return default


def _host(vms: Sequence[VM], group: str | None) -> str:
    """First address of the lowest-index VM of ``group``: IP first, DNS name otherwise."""
    pool = [v for v in vms if group is None or v.instance_group == group]
    if not pool:
        raise _Unrecoverable(f"no VM of instance group {group!r} in the deployment's VM list")
    pool.sort(key=lambda v: (v.index if v.index is not None else 1 << 30, v.id))
    for vm in pool:
        for addr in [*vm.ips, *vm.dns]:
            if isinstance(addr, str) and addr:
                return addr
    raise _Unrecoverable(f"the VMs of instance group {group!r} have no IP address or DNS name")


def _group_with_job(manifest: dict[str, Any], job_names: tuple[str, ...]) -> tuple[str | None, dict[str, Any]]:
    found = find_job(manifest, job_names)
    if found:
        return found
    groups = instance_groups(manifest)
    return (str(groups[0].get("name")) if len(groups) == 1 else None), {}


def _q(value: str) -> str:
    return quote(value, safe="")


def _redis(manifest: dict[str, Any], vms: Sequence[VM], instance_id: str) -> dict[str, Any]:
    group, props = _group_with_job(manifest, ("standalone", "redis", "redis-server", "node", "cluster"))
    password = _literal(
        _first(
            dig(props, "auth", "password"),
            dig(props, "password"),
            dig(props, "redis", "password"),
            dig(manifest, "meta", "password"),
        ),
        "redis password (auth.password / meta.password)",
    )
    port = _port(_first(dig(props, "port"), dig(props, "redis", "port")), 6379)
    host = _host(vms, group)
    return {"host": host, "port": port, "password": password, "url": f"redis://{host}:{port}"}


def _postgresql(manifest: dict[str, Any], vms: Sequence[VM], instance_id: str) -> dict[str, Any]:
    group, props = _group_with_job(manifest, ("postgres", "postgresql"))
    # Where each kind of manifest keeps the application user: forge meta.service,
    # postgres-boshrelease postgres.users[0], older releases databases.roles[0].
    sources = [
        (
            "meta.service",
            dig(manifest, "meta", "service"),
            "username",
            "password",
            _first(dig(manifest, "meta", "service", "db_name"), dig(manifest, "meta", "service", "database")),
        ),
        (
            "postgres.users[0]",
            dig(props, "postgres", "users", 0),
            "username",
            "password",
            dig(props, "postgres", "databases", 0, "name"),
        ),
        (
            "databases.roles[0]",
            dig(props, "databases", "roles", 0),
            "name",
            "password",
            dig(props, "databases", "databases", 0, "name"),
        ),
    ]
    for where, src, user_key, pass_key, db in sources:
        if isinstance(src, dict) and (src.get(user_key) is not None or src.get(pass_key) is not None):
            username = _literal(src.get(user_key), f"postgresql username ({where}.{user_key})")
            password = _literal(src.get(pass_key), f"postgresql password ({where}.{pass_key})")
            db_name = _literal(_first(db, "postgres"), "postgresql database name")
            break
    else:
        raise _Unrecoverable("postgresql username/password not found (meta.service, postgres.users, databases.roles)")
    port = _port(
        _first(
            dig(props, "postgres", "port"), dig(props, "databases", "port"), dig(manifest, "meta", "service", "port")
        ),
        5432,
    )
    host = _host(vms, group)
    user_q, pass_q, db_q = _q(username), _q(password), _q(db_name)
    return {
        "username": username,
        "password": password,
        "host": host,
        "db_host": host,
        "port": port,
        "db_name": db_name,
        "uri": f"postgres://{user_q}:{pass_q}@{host}:{port}/{db_q}",
        "jdbc_uri": f"jdbc:postgresql://{host}:{port}/{db_q}?user={user_q}&password={pass_q}",
    }


def _rabbitmq_users(props: Any) -> tuple[str, str, str, str]:
    """(user, password, admin user, admin password), each a literal from the manifest."""
    username = _literal(
        _first(dig(props, "rabbitmq", "default", "user"), dig(props, "rabbitmq", "default", "username")),
        "rabbitmq user (rabbitmq.default.user)",
    )
    password = _literal(
        _first(dig(props, "rabbitmq", "default", "password"), dig(props, "rabbitmq", "default", "pass")),
        "rabbitmq password (rabbitmq.default.password)",
    )
    admin_user = _literal(
        _first(
            dig(props, "rabbitmq", "admin", "user"),
            dig(props, "rabbitmq", "admin", "username"),
            dig(props, "rabbitmq-server", "administrators", "management", "username"),
        ),
        "rabbitmq admin user (rabbitmq.admin.user)",
    )
    admin_pass = _literal(
        _first(
            dig(props, "rabbitmq", "admin", "pass"),
            dig(props, "rabbitmq", "admin", "password"),
            dig(props, "rabbitmq-server", "administrators", "management", "password"),
        ),
        "rabbitmq admin password (rabbitmq.admin.pass)",
    )
    return username, password, admin_user, admin_pass


def _rabbitmq(manifest: dict[str, Any], vms: Sequence[VM], instance_id: str) -> dict[str, Any]:
    group, props = _group_with_job(manifest, ("rabbitmq", "rabbitmq-server"))
    username, password, admin_user, admin_pass = _rabbitmq_users(props)
    port = _port(dig(props, "rabbitmq", "port"), 5672)
    mgmt_port = _port(dig(props, "rabbitmq", "management", "port"), 15672)
    host = _host(vms, group)
    vhost = instance_id
    uri = f"amqp://{_q(username)}:{_q(password)}@{host}:{port}/{_q(vhost)}"
    api_url = f"http://{host}:{mgmt_port}/api"
    return {
        "admin_username": admin_user,
        "admin_password": admin_pass,
        "username": username,
        "password": password,
        "vhost": vhost,
        "host": host,
        "hostname": host,
        "port": port,
        "uri": uri,
        "protocols": {
            "amqp": {
                "host": host,
                "port": port,
                "username": username,
                "password": password,
                "vhost": vhost,
                "uri": uri,
            },
            "management": {
                "host": host,
                "port": mgmt_port,
                "username": admin_user,
                "password": admin_pass,
                "uri": f"http://{_q(admin_user)}:{_q(admin_pass)}@{host}:{mgmt_port}/api",
                "path": "/api",
            },
        },
        # rabbitmq-forge's credentials.yml logs the dashboard straight in with the admin user
        "dashboard_url": f"http://{host}:{mgmt_port}/#/login/{_q(admin_user)}/{_q(admin_pass)}",
        "api_url": api_url,
    }


_RULES = {"redis": _redis, "postgresql": _postgresql, "rabbitmq": _rabbitmq}


def recover_credentials(
    service: str | None,
    manifest: Mapping[str, Any] | str | None,
    vms: Sequence[VM],
    instance_id: str,
    release_services: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Rebuild an instance's credentials: ``(credentials, "")`` or ``(None, reason)``.

    ``service`` is the service id or kind; ``manifest`` the parsed manifest or its YAML text.
    """
    if isinstance(manifest, str) or manifest is None:
        parsed = parse_manifest(manifest)
        if parsed.error:
            return None, f"cannot recover credentials: {parsed.error}"
        data: dict[str, Any] = parsed.data or {}
    else:
        data = dict(manifest)
    kind = service_kind(service, manifest_releases(data), release_services)
    if kind is None:
        return None, f"no credential recovery rule for service {service!r} (supported: {', '.join(SUPPORTED)})"
    try:
        return _RULES[kind](data, vms, instance_id), ""
    except _Unrecoverable as exc:
        return None, f"cannot recover {kind} credentials: {exc}"
