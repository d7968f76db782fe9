"""Dependency checks (the spec's health checks): every endpoint reached, authenticated and
authorised for exactly what the reconciler needs, one :class:`Check` each with the fix when it
fails. ``GET /b/health`` runs them from inside the stack; the CLI's ``doctor`` prints them.

What the reconciler needs, and what is checked:

- the configuration loads;
- DynamoDB: both tables exist and answer (``DescribeTable``, a read);
- the state machine exists (``DescribeStateMachine``);
- each CF foundation: the API answers, its UAA gives the client a token, the token carries a
  scope that may read every space's service instances (``cloud_controller.admin``,
  ``cloud_controller.admin_read_only`` or ``cloud_controller.global_auditor``), and the broker
  is visible;
- each BOSH director: ``/info`` answers, the client logs in, ``/deployments`` may be read;
- Vault: it answers and is unsealed, the token is valid (``lookup-self``), and
  ``sys/capabilities-self`` grants, on each path family, what the reconciler does there
  (:data:`VAULT_NEEDS`).

Checks never carry a secret: names, URLs, scopes and capabilities only.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ReconcilerError

CF_READ_ALL = ("cloud_controller.admin", "cloud_controller.admin_read_only", "cloud_controller.global_auditor")
PROBE_ID = "00000000-0000-4000-8000-000000000000"  # any instance id: capabilities are per path pattern
#: path family -> (a logical path of it, capabilities the reconciler needs there)
VAULT_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "instance trees": (f"{{mount}}/{PROBE_ID}/credentials", ("read", "create", "update")),
    "instance listing": (f"{{mount}}/{PROBE_ID}/", ("list",)),
    "index": ("{mount}/db", ("read", "create", "update")),
    "backups": (f"{{mount}}/backups/{PROBE_ID}/probe", ("read", "create", "update", "delete")),
    "backup listing": (f"{{mount}}/backups/{PROBE_ID}/", ("list",)),
    "mount listing": ("{mount}/", ("list",)),
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(name: str, fn: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, fn() or "ok")
    except ReconcilerError as exc:
        return Check(name, False, f"{type(exc).__name__}: {str(exc)[:300]}", fix)
    except Exception as exc:  # noqa: BLE001 - a check reports, it never raises
        return Check(name, False, f"{type(exc).__name__}: {str(exc)[:200]}", fix)


def token_scopes(header: str) -> list[str]:
    """The ``scope`` claim of a bearer JWT (read, not verified: UAA verified it for us)."""
    token = header.split(" ", 1)[-1]
    parts = token.split(".")
    if len(parts) != 3:
        return []
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return []
    scope = claims.get("scope") if isinstance(claims, dict) else None
    return [str(s) for s in scope] if isinstance(scope, list) else str(scope or "").split()


def vault_kv_path(mount: str, logical: str, kv_version: int) -> str:
    """The API path of a logical KV path (KV v2 puts data/ and metadata/ after the mount)."""
    rest = logical[len(mount) + 1:]
    if kv_version != 2:
        return logical
    return f"{mount}/metadata/{rest}" if logical.endswith("/") else f"{mount}/data/{rest}"


def cf_checks(client: Any) -> list[Check]:
    name = f"cf:{client.name}"
    out = [_run(f"{name} reached", lambda: f"API {client.foundation.api_url} answers ({len(client.root())} links)",
                "check cf api_url and that the functions reach it (VPC, security groups, TLS ca_cert)")]
    if not out[-1].ok:
        return out
    scopes: list[str] = []

    def token() -> str:
        scopes[:] = token_scopes(client.token.header())
        return f"UAA issued a token to client {client.foundation.client_id!r}"

    out.append(_run(f"{name} authenticated", token, "check client_id/client_secret (and uaa_url) of this foundation"))
    if not out[-1].ok:
        return out

    def read_all() -> str:
        have = [s for s in CF_READ_ALL if s in scopes]
        if not have:
            raise PermissionError(f"token scopes {sorted(scopes)} include none of {list(CF_READ_ALL)}")
        return f"scope {have[0]}"

    out.append(_run(f"{name} scope to read all instances", read_all,
                    "grant the client cloud_controller.admin_read_only (uaac client update ID --authorities ...)"))
    out.append(_run(f"{name} broker visible", lambda: f"broker {client.broker()['name']!r}",
                    "check broker_name/broker_guid and that the client may see service brokers"))
    return out


def bosh_checks(client: Any) -> list[Check]:
    name = f"bosh:{client.name}"
    out = [_run(f"{name} reached", lambda: f"director {client.info().get('name', '?')!r} answers /info",
                "check the director url and that the functions reach it (VPC, TLS ca_cert)")]
    if not out[-1].ok:
        return out
    out.append(_run(f"{name} authenticated and may read deployments",
                    lambda: f"{len(client.deployments())} deployment(s) listed",
                    "check client_id/client_secret (UAA) or username/password; the client needs bosh.read "
                    "(or bosh.admin) on the director"))
    return out


def vault_checks(vault: Any) -> list[Check]:
    out = [_run("vault reached and unsealed", lambda: _vault_health(vault),
                "check vault.address, TLS ca_cert and that Vault is unsealed")]
    if not out[-1].ok:
        return out
    out.append(_run("vault token valid", lambda: "lookup-self ok" if vault.is_authenticated() else _refuse(
        "the token was refused"), "renew or replace the Vault token (vault.token) or fix vault.aws_role"))
    if not out[-1].ok:
        return out
    for family, (logical, needed) in VAULT_NEEDS.items():
        path = vault_kv_path(vault.mount, logical.format(mount=vault.mount), vault.kv_version)
        out.append(_run(f"vault may {'/'.join(needed)} {family}", functools.partial(_capable, vault, path, needed),
                        f"give the token's policy {list(needed)} on {path.replace(PROBE_ID, '*')}"))
    return out


def _refuse(message: str) -> str:
    raise PermissionError(message)


def _vault_health(vault: Any) -> str:
    health = vault.health()
    if health.get("sealed"):
        raise PermissionError("Vault is sealed")
    return f"initialised, unsealed (KV v{vault.kv_version} at {vault.mount}/)"


def _capable(vault: Any, path: str, needed: tuple[str, ...]) -> str:
    granted = vault.capabilities(path)
    if "root" in granted:
        return f"{path}: {', '.join(sorted(granted))}"
    missing = [c for c in needed if c not in granted]
    if missing or "deny" in granted:
        raise PermissionError(f"{path}: granted {sorted(granted) or ['none']}, missing {missing or list(needed)}")
    return f"{path}: {', '.join(sorted(granted))}"


def _table_status(store: Any, table: str) -> str:
    return str(store.client.describe_table(TableName=table)["Table"]["TableStatus"])


def aws_checks(store: Any, sfn: Any, state_machine_arn: str) -> list[Check]:
    out = []
    for table in (store.cache_table, store.state_table):
        out.append(_run(f"dynamodb table {table}", functools.partial(_table_status, store, table),
                        "deploy the stack's tables (sam deploy) and give the function DescribeTable/GetItem"))
    out.append(_run("state machine", lambda: f"{sfn.describe_state_machine(stateMachineArn=state_machine_arn)['name']}",
                    "check STATE_MACHINE_ARN and the API role's states:DescribeStateMachine"))
    return out


def run_checks(settings: Any, *, store: Any, sfn: Any, state_machine_arn: str, cf_clients: list[Any],
               bosh_clients: list[Any], vault: Any | None) -> dict[str, Any]:
    """Every check, in order; ``ok`` when all passed."""
    checks = [Check("configuration", True, f"{len(cf_clients)} CF foundation(s), {len(bosh_clients)} BOSH "
                                          f"director(s), vault {'configured' if vault else 'not configured'}")]
    checks += aws_checks(store, sfn, state_machine_arn)
    for c in cf_clients:
        checks += cf_checks(c)
    for b in bosh_clients:
        checks += bosh_checks(b)
    if vault is not None:
        checks += vault_checks(vault)
    else:
        checks.append(Check("vault configured", False, "vault.address is not set", "set vault.address"))
    return {"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}
