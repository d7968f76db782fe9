"""Finding kinds as data: what the reconciler reports to an operator, one enum member each.

Status, metrics (Prometheus and EMF), the dashboard, the store, the index merge, the Orphans
phase and the demo loop over :class:`FindingKind`; none of them names a kind. Adding a kind
means: a member here (with its :class:`FindingSpec`), its rule in ``domain/orphans.py``
(``RULES``), and a line in the docs. Nothing is ever deleted on a finding: it is a recorded
fact with first/last seen and a check count.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class FindingSpec:
    label: str  # how status pages and the dashboard name the kind ("CF")
    description: str  # one finding, in words
    summary: str  # a count of them, in words: "%d <summary>"
    needs: tuple[str, ...]  # the sources whose ok answer in this run the rule's evidence needs
    key_field: str  # the entry field that names one finding for an operator
    metric: str  # the CloudWatch (EMF) metric counting them
    # an unscanned deployment's owner is unknown: the kind is not evaluated on partial evidence
    needs_full_scan: bool = False
    # reconciler.remediation.<key> configures what is done about the kind (default: the kind's value)
    remediation_key: str = ""
    # the remediation actions the kind accepts; "report" (the default) does nothing but report
    actions: tuple[str, ...] = ("report",)
    # recorded in the instance's ``secret/<id>/metadata`` history when found and when resolved
    in_history: bool = False


class FindingKind(StrEnum):
    """The kinds of finding, in the order every report lists them."""

    CF = "cf"
    BOSH = "bosh"
    VAULT = "vault"
    # beside the live broker (docs/matching-and-planning.md#beside-the-blacksmith-broker)
    FAILED_PROVISION = "failed_provision"
    NAME_MISMATCH = "name_mismatch"
    IN_FLIGHT = "in_flight"

    @property
    def spec(self) -> FindingSpec:
        return SPECS[self]

    @property
    def label(self) -> str:
        return SPECS[self].label

    @property
    def description(self) -> str:
        return SPECS[self].description

    @property
    def remediation_key(self) -> str:
        """The key under ``reconciler.remediation`` (``vault_orphan``)."""
        return SPECS[self].remediation_key or self.value

    @property
    def figure(self) -> str:
        """The run figure (and EMF key) counting this kind: ``orphans_<kind>``."""
        return f"orphans_{self.value}"


SPECS: dict[FindingKind, FindingSpec] = {
    FindingKind.CF: FindingSpec(
        label="CF", description="CF instance of our broker, no deployment",
        summary="CF instances without deployment", needs=("cf", "bosh"), key_field="instance_id",
        metric="OrphansCF", needs_full_scan=True, in_history=True,
        remediation_key="cf_orphan"),
    FindingKind.BOSH: FindingSpec(
        label="BOSH", description="our deployment, no CF instance",
        summary="deployments without CF instance", needs=("cf", "bosh"), key_field="deployment_name",
        metric="OrphansBosh", in_history=True, remediation_key="bosh_orphan"),
    FindingKind.VAULT: FindingSpec(
        label="Vault", description="index/Vault entry with neither",
        summary="Vault entries without either", needs=("cf", "bosh", "vault"), key_field="instance_id",
        metric="OrphansVault", needs_full_scan=True, in_history=True, remediation_key="vault_orphan",
        # the only destructive action: Vault data, after a verified backup (never a BOSH or CF delete)
        actions=("report", "archive")),
    FindingKind.FAILED_PROVISION: FindingSpec(
        label="Failed provision", description="CF instance whose create failed, no deployment",
        summary="failed provisions", needs=("cf", "bosh"), key_field="instance_id",
        metric="FailedProvisions", needs_full_scan=True, in_history=True),
    FindingKind.NAME_MISMATCH: FindingSpec(
        label="Name mismatch", description="running deployment not named <plan_id>-<instance_id>, as the broker needs",
        summary="deployments the broker cannot find by name", needs=("cf", "bosh"), key_field="instance_id",
        metric="NameMismatches"),
    FindingKind.IN_FLIGHT: FindingSpec(
        label="In flight", description="instance with a broker operation in progress: not judged, not repaired",
        summary="instances with an operation in flight", needs=("cf",), key_field="instance_id",
        metric="InFlight"),
}

if set(SPECS) != set(FindingKind):  # a member without its spec is a bug at import, not at report time
    raise RuntimeError(f"finding kinds without a spec: {sorted(set(FindingKind) - set(SPECS))}")


def empty_findings() -> dict[str, dict[str, Any]]:
    """``{kind: {}}`` for every kind: the shape of a state with nothing found."""
    return {kind.value: {} for kind in FindingKind}
