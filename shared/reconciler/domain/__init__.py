"""Pure reconciliation logic: matching, planning, credential recovery, index merge, orphans.

No I/O here (tests/unit/test_domain_purity.py proves it): adapters fetch, this decides,
the workflow writes. Call sequence: docs/matching-and-planning.md.
"""

from .catalog import Catalog, PlanInfo, build_catalog
from .credentials import recover_credentials, service_kind
from .findings import FindingKind, FindingSpec, empty_findings
from .index import merge_index, observations_from, validate_index
from .manifests import ParsedManifest, parse_manifest
from .matching import is_excluded_name, match
from .orphans import orphan_candidates, source_ok, update_orphans
from .planning import (
    BatchPlan,
    PlanItem,
    Tree,
    bindings_without_credentials,
    build_plan_items,
    needs_parameters,
    paths_read,
    plan_batch,
    plan_instance,
    task_hold,
)
from .types import (
    Conflict,
    DomainConfig,
    Evidence,
    IndexObservation,
    InstancePlan,
    Match,
    MatchingRule,
    MatchResult,
    OrphanCandidate,
    OrphanKind,
    OrphanUpdate,
    Strategy,
    UnidentifiedDeployment,
    ValidationIssue,
    ValidationReport,
)
from .uuids import is_allowed_write_path, is_uuid, normalize_uuid, split_deployment_name

__all__ = [
    "BatchPlan", "Catalog", "Conflict", "DomainConfig", "Evidence", "FindingKind", "FindingSpec",
    "IndexObservation", "InstancePlan", "Match", "MatchResult", "MatchingRule", "OrphanCandidate", "OrphanKind",
    "OrphanUpdate", "ParsedManifest", "PlanInfo", "PlanItem", "Strategy", "Tree", "UnidentifiedDeployment",
    "ValidationIssue", "ValidationReport", "build_catalog", "build_plan_items", "empty_findings",
    "is_allowed_write_path", "is_excluded_name", "is_uuid", "match", "merge_index", "needs_parameters",
    "normalize_uuid", "observations_from", "orphan_candidates", "parse_manifest", "paths_read", "plan_batch",
    "plan_instance", "bindings_without_credentials", "task_hold",
    "recover_credentials", "service_kind", "source_ok", "split_deployment_name", "update_orphans", "validate_index",
]  # fmt: skip
