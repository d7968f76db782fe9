"""The apply beside the scan (``reconciler.concurrency.overlap_phases``): the cut of one early
apply batch, made by ApplyBatch (``early: true``) while ScanDeployments is still running.

Early apply batch ``b`` is scan batch ``b``'s instances. It waits (polling the small
``scan#<b>#figures`` items) until scan batch ``b`` and the first batches, the deployments a
name cannot identify (DiscoverBosh scans them first: their manifests may claim any
instance), are scanned; then it runs ``match()`` on every detail scanned so far plus the
name-only list entries of the rest, and keeps the instances matched, without conflict, to a
deployment of batch ``b`` that scanned cleanly. Everything else (conflicts, scan errors,
instances matched by manifest only, a failed or late scan batch) is left to the late pass:
Match, on complete evidence, drops the items whose digest equals what an early batch applied
and reports an instance written early that the complete evidence puts in conflict (a
deployment scanned later whose manifest names it). Credentials never go to scratch: the
items are the same records Match writes; the reads and writes stay in the ApplyBatch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from .. import progress
from ..domain import DomainConfig, build_plan_items, match
from ..models import BoshDeployment, DeploymentDetail
from . import contracts, runtime, sources
from .deps import Deps

log = logging.getLogger("reconciler.phases.early_apply")

POLL_S = 1.0  # between two looks at the scan figures (one GetItem each)
MAX_WAITS = 3  # invocations out of time while waiting: then the batch is left to the late pass


def digest(item: Any) -> str:
    """What an early batch applied, as Match compares it: the item's JSON."""
    data = item if isinstance(item, dict) else item.model_dump(mode="json")
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def scanned(store: Any, run_id: str, batch: int) -> bool | None:
    """True: scan batch done; False: it failed (RecordFailure's mark); None: not yet."""
    if store.get_scratch(run_id, contracts.batch_figures("scan", batch)) is not None:
        return True
    if store.get_scratch(run_id, contracts.scan_failed(batch)) is not None:
        return False
    return None


def wait_for_scans(store: Any, run_id: str, needed: list[int], budget: Any,
                   sleep: Any = time.sleep) -> bool | None:
    """True when every needed scan batch is done, False when one failed, None out of time."""
    pending = list(needed)
    while pending:
        state = scanned(store, run_id, pending[0])
        if state is False:
            return False
        if state is True:
            pending.pop(0)
            continue
        if budget.exhausted():
            return None
        sleep(min(POLL_S, max(0.0, budget.left_s())))
    return True


def cut(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any] | None:
    """Wait for the scans, then write early batch ``b``'s items (``apply#<b>#items``) and their
    digests (``apply#<b>#early``). None: out of time while waiting (invoke again)."""
    run_id, batch = event["run_id"], int(event["batch"])
    s, store = deps.settings, deps.store
    listing = store.get_scratch(run_id, contracts.BOSH) or {}
    size = int(listing.get("batch_size") or 1)
    entries = listing.get("deployments") or []
    count = -(-len(entries) // size)
    needed = sorted({batch, *range(min(int(listing.get("unnamed_batches") or 0), count))})
    waits = int(event.get("early_waits") or 0)
    ready = False
    if waits < MAX_WAITS:
        got = wait_for_scans(store, run_id, needed, runtime.Budget.for_batch(context, s, event))
        if got is None:
            return None
        ready = got
    items = early_items(store, run_id, batch, entries, size, count, DomainConfig.from_settings(s)) if ready else []
    if not ready:
        log.info("vault: early batch %d: its scans did not complete; left to the late pass", batch)
    ttl = runtime.scratch_ttl(s)
    store.put_scratch(run_id, contracts.apply_items(batch), items, ttl)
    store.put_scratch(run_id, contracts.early_applied(batch), {i["instance_id"]: digest(i) for i in items}, ttl)
    progress.map_grow(store, run_id, "apply", items=len(items))  # Match sets the whole Map's totals
    return {"items": len(items)}


def early_items(store: Any, run_id: str, batch: int, entries: list[Any], size: int, count: int,
                cfg: DomainConfig) -> list[dict[str, Any]]:
    """The items of batch ``batch``'s deployments that the evidence read so far matches cleanly."""
    deployments: list[Any] = []
    details: dict[str, DeploymentDetail] = {}
    for b in range(count):
        got = store.get_scratch(run_id, contracts.scan_details(b)) if scanned(store, run_id, b) else None
        if got is None:  # not scanned yet: its names are evidence, its manifests are not (yet)
            deployments += [BoshDeployment.model_validate(d) for d in entries[b * size:(b + 1) * size]]
            continue
        for d in got:
            detail = DeploymentDetail.model_validate(d)
            deployments.append(detail)
            details[detail.name] = detail
    mine = {d["name"] for d in entries[batch * size:(batch + 1) * size]}
    instances, catalog, bindings = sources.load_cf(store.get_scratch(run_id, contracts.CF))
    index = store.get_scratch(run_id, contracts.INDEX) or {}
    result = match(instances, deployments, index, catalog, cfg)
    conflicted = set(result.conflicted_instances)
    items = build_plan_items(result, instances=instances, details=details, index=index, bindings=bindings,
                             cf_available=True, catalog=catalog)
    keep = [i for i in items if i.match is not None and i.match.deployment_name in mine
            and i.instance_id not in conflicted and not i.skip_reason and not i.in_flight
            and i.deployment is not None and not i.deployment.error]
    log.info("vault: early batch %d: %d instance(s) matched cleanly to its scanned deployments", batch, len(keep),
             extra={"batch": batch, "early_items": len(keep)})
    return [i.model_dump(mode="json") for i in keep]


def applied(store: Any, run_id: str, batches: int) -> dict[str, str]:
    """``{instance: digest}`` of what the early batches applied (a batch that did not finish,
    and the instances it failed, are not applied)."""
    out: dict[str, str] = {}
    for b in range(batches):
        figures = store.get_scratch(run_id, contracts.batch_figures("apply", b))
        if figures is None:
            continue
        failed = set(figures.get("failed_ids") or [])
        digests = store.get_scratch(run_id, contracts.early_applied(b)) or {}
        out.update({k: v for k, v in digests.items() if k not in failed})
    return out
