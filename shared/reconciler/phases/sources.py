"""Adapter access for the phases: CF discovery, BOSH directors, Vault, kept in one place so the
phase modules read as the reconciliation steps they are."""

from __future__ import annotations

from typing import Any

from ..models import BoshDeployment, CatalogPlan, CFBinding, CFInstance, DeploymentDetail
from ..ports import CloudController, Director, KvStore


def vault(s: Any, store: Any, kv_version: Any = None) -> KvStore:
    """The Vault client; ``kv_version`` (1 or 2, as Match detected it for this run) spares the
    Lambda its own ``sys/mounts`` read."""
    from ..vault import VaultClient  # cold start: a Lambda loads only the clients it uses

    client = VaultClient.from_settings(s, store=store)
    client.use_kv_version(kv_version)
    return client


def cf_foundations(s: Any, store: Any) -> list[Any]:
    """One CF client per configured foundation; ``client.discover()`` is DiscoverCF's job."""
    from ..cf import CFClient  # cold start: a Lambda loads only the clients it uses

    return CFClient.all_from_settings(s, store)


def cf_clients(s: Any, store: Any, endpoints: dict[str, dict[str, str]] | None = None) -> dict[str, CloudController]:
    """``{foundation name: client}``; the client reads one binding's credentials.
    ``endpoints``: per foundation the UAA links DiscoverCF read from the API root this run
    (the run's flags), so these clients do not read the root again."""
    from ..cf import CFClient  # cold start: a Lambda loads only the clients it uses

    clients = CFClient.all_from_settings(s, store)
    for c in clients:
        c.use_endpoints((endpoints or {}).get(c.name))
    return {c.name: c for c in clients}


def binding_credentials(client: CloudController, binding: CFBinding) -> CFBinding:
    """The binding with its credentials from CF (``/v3/service_credential_bindings/:guid/details``)."""
    return client.binding_details(binding)


def bosh_clients(s: Any, store: Any) -> dict[str, Director]:
    """``{director name: client}``; the client lists deployments and scans one. The phase's
    ``Deps`` keeps them for the container's life: its invocations and their threads share one
    ``/info`` and one UAA token, refreshed when it expires."""
    from ..bosh import BoshClient  # cold start: a Lambda loads only the clients it uses

    return {c.name: c for c in BoshClient.all_from_settings(s, store)}


def list_deployments(client: Director) -> list[BoshDeployment]:
    return list(client.deployments())


def scan_deployment(client: Director, deployment: BoshDeployment) -> DeploymentDetail:
    """Fetch manifest and VMs (the adapter caches a good detail itself); a failure comes back
    as a detail with ``error`` set."""
    return client.detail(deployment, use_cache=False)


def load_cf(data: dict[str, Any] | None) -> tuple[list[CFInstance], list[CatalogPlan], list[CFBinding]]:
    data = data or {}
    return ([CFInstance.model_validate(i) for i in data.get("instances", [])],
            [CatalogPlan.model_validate(p) for p in data.get("catalog", [])],
            [CFBinding.model_validate(b) for b in data.get("bindings", [])])
