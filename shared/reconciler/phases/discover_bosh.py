"""DiscoverBosh (phase 2, first half): every director's deployment list, cut into scan batches.

Non-service deployments (``matching.excluded_deployments``: cf, bosh, concourse, ...) are
counted but never scanned. Each service deployment is then one of:

* ``fresh``: its cached detail is younger than ``cache_ttl``;
* ``revalidated``: older, but BOSH's events feed (``GET /events``, one or a few requests per
  director) shows no event for it since it was cached: the cached detail is still true;
* ``read``: no cached detail, or an event since, or the feed could not be read: ScanBatch
  asks the Director (manifest + instances).

``concurrency.max_deployments_per_run`` caps the reads, least recently scanned first (a
deployment never scanned first of all); the rest are deferred. Fresh and revalidated
details are evidence without a request, so after ceil(deployments / cap) runs every
deployment is judged on a true detail. The list goes to scratch ``bosh``; the state gets
the batch numbers the ScanDeployments Map iterates over: the first window of them when the
scan is larger than one execution's budgets (``phases/chain.py``; the rest in follow-up
executions of the run).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import progress
from ..domain import DomainConfig, is_excluded_name
from ..domain.uuids import trailing_uuid
from ..errors import ReconcilerError
from . import chain, contracts, retry_first, runtime, sources
from .deps import Deps

log = logging.getLogger("reconciler.phases.discover_bosh")


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    run = contracts.parse(contracts.RunInput, event, "run").run
    s, store = deps.settings, deps.store
    progress.phase_started(store, run.run_id, "Discover")
    if not s.bosh_directors:
        log.info("bosh: no director configured; BOSH scanning skipped")
        return {"source": "bosh", "status": "skipped", "error": "no BOSH director configured", "deployments": 0,
                "batches": []}
    cfg = DomainConfig.from_settings(s)
    kept: dict[str, str] = {}  # "director/name" -> "fresh" | "revalidated" (answered from the cache)
    feed_figures: dict[str, int] = {}
    deployments, excluded, failed = list_directors(deps, run, cfg, kept, feed_figures)
    if failed:
        record_down(store, run.run_id, failed)
    reads = [d for d in deployments if key_of(d) not in kept]
    chosen, deferred = choose_reads(s, store, reads)
    chosen_keys = {key_of(d) for d in chosen}
    deployments = [d for d in deployments if key_of(d) in kept or key_of(d) in chosen_keys]

    deployments = retry_first.first(deployments, retry_first.get(store)["deployments"],
                                    key_of)  # last run's failed scans first
    # the deployments a name cannot identify first: their manifests may claim any instance, so
    # an apply beside the scan (reconciler.concurrency.overlap_phases) waits for them
    deployments.sort(key=lambda d: trailing_uuid(d.name) is not None)
    unnamed = sum(trailing_uuid(d.name) is None for d in deployments)
    wanted = runtime.batch_size(s, "scan", (store.get_metrics() or {}).get("scan_ms_per_item"))
    size, count = runtime.split(len(deployments), wanted, runtime.max_map_items(s))
    revalidated = sum(v == "revalidated" for v in kept.values())
    log.info("bosh: %d deployments to scan in %d batch(es) (%d read from the Director, %d fresh in the cache, "
             "%d revalidated by the events feed), %d excluded, %d deferred to the next run",
             len(deployments), count, len(chosen), len(kept) - revalidated, revalidated, len(excluded), len(deferred),
             extra={"deployments": len(deployments) + len(excluded) + len(deferred), "to_scan": len(deployments),
                    "excluded": len(excluded), "deferred": len(deferred), "batches": count})
    store.put_scratch(run.run_id, contracts.BOSH, {
        "deployments": [d.model_dump(mode="json") for d in deployments],
        "deferred": [d.model_dump(mode="json") for d in deferred],
        "excluded": [d.model_dump(mode="json") for d in excluded], "batch_size": size,
        "unnamed_batches": -(-unnamed // size) if unnamed else 0,  # the first ones hold them
        "from_cache": kept},
        runtime.scratch_ttl(s))
    progress.map_total(store, run.run_id, "scan", count, len(deployments))
    # continue-as-new: this execution scans the first window; MoreToScan? hands the rest over
    overlap = bool(run.limits and run.limits.overlap)
    width = chain.window(s, "scan", count, size, (store.get_metrics() or {}).get("scan_ms_per_item"),
                         iterations_per_batch=2 if overlap else 1)  # an early apply batch beside each
    if width < count:
        log.info("bosh: this execution scans %d of %d batches; the rest in follow-up executions of run %s",
                 width, count, run.run_id)
    return {"source": "bosh", "status": "ok", "deployments": len(deployments) + len(excluded) + len(deferred),
            "to_scan": len(deployments), "to_read": len(chosen), "fresh": len(kept) - revalidated,
            "revalidated": revalidated, **feed_figures,
            "excluded": len(excluded), "deferred": len(deferred), "batch_size": size,
            **chain.cut(count, width), "directors": len(s.bosh_directors),
            "failed_directors": sorted(failed),
            "ok_directors": sorted(d.name for d in s.bosh_directors if d.name not in failed)}


def list_directors(deps: Deps, run: contracts.Run, cfg: DomainConfig, kept: dict[str, str],
                   feed_figures: dict[str, int]) -> tuple[list[Any], list[Any], dict[str, str]]:
    """Every director's service deployments and excluded ones, and ``{director: error}`` of the
    directors that did not answer. One director down degrades only its share (the run goes on
    with the others); every director down raises the last error (BOSH is down: the state
    machine retries, then goes on without BOSH)."""
    s, store = deps.settings, deps.store
    ttl = float(s.reconciler.cache_ttl)
    deployments: list[Any] = []
    excluded: list[Any] = []
    failed: dict[str, str] = {}
    clients = deps.directors()
    for name, client in clients.items():
        try:
            listing = sources.list_deployments(client)
        except ReconcilerError as exc:
            if len(failed) + 1 == len(clients):
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        listed = []
        for dep in listing:
            if is_excluded_name(dep.name, cfg.excluded_deployments):
                excluded.append(dep)
                log.debug("bosh:%s deployment %s excluded (not a service deployment)", name, dep.name)
            else:
                listed.append(dep)
        log.info("bosh:%s: %d deployments listed", name, len(listing))
        if ttl > 0 and not run.forced:
            verdicts = freshness(store, client, name, [d.name for d in listed], ttl, feed_figures)
            kept.update({f"{name}/{n}": v for n, v in verdicts.items() if v != "read"})
        deployments += listed
    return deployments, excluded, failed


def record_down(store: Any, run_id: str, failed: dict[str, str]) -> None:
    """A director that did not answer: recorded (the run ends with errors), its share degraded."""
    for name, error in sorted(failed.items()):
        log.error("bosh:%s: deployment list failed; its share is not judged this run: %s", name, error)
        store.record_error(run_id, "DiscoverBosh", f"bosh:{name}", error[:500])




FEED_MARGIN_S = 60.0  # clock skew and scan time: an event this close before a detail was cached counts as after it
FEED_MAX_PAGES = 10  # 2,000 events per director and run; a busier feed is not read, its stale details are


def key_of(dep: Any) -> str:
    return f"{dep.director}/{dep.name}"


def freshness(store: Any, client: Any, director: str, names: list[str], ttl: float,
              figures: dict[str, int], now: float | None = None) -> dict[str, str]:
    """``{name: "fresh" | "revalidated" | "read"}`` for one director's listed deployments.

    The feed state (carry-over ``bosh_feed#<director>``) is a chain of windows read one run
    after the other: ``chain_since`` (since when every event is known), ``read_until`` (where
    the next window starts) and ``last_event`` (per deployment, its newest event's time). A
    detail cached at ``c`` is still true when the chain began before ``c`` and the deployment's
    newest event is older than ``c - FEED_MARGIN_S``. A feed that fails (or is busier than
    ``FEED_MAX_PAGES``) starts a new chain: what it could not vouch for is read again."""
    now = time.time() if now is None else now
    cached = store.cached_deployments(director)
    stale = [n for n in names if n in cached and now - cached[n] >= ttl]
    state = store.get_scratch(contracts.CARRYOVER, contracts.bosh_feed(director))
    state = state if isinstance(state, dict) and "chain_since" in state else None
    feed_ok = False
    if state is not None and stale:
        figures["feed_requests"] = figures.get("feed_requests", 0)
        try:
            events, requests = client.events_since(int(state["read_until"]) - 1, max_pages=FEED_MAX_PAGES)
            figures["feed_requests"] += requests
        except ReconcilerError as exc:
            log.warning("bosh:%s: events feed unavailable (%s): %d stale details are read again", director, exc,
                        len(stale))
            events = None
        if events is None:
            state = None  # not read (failed or too busy): a new chain starts now
        else:
            feed_ok = True
            last = dict(state.get("last_event") or {})
            for e in events:
                dep = e.get("deployment") or (e.get("object_name") if e.get("object_type") == "deployment" else None)
                ts = e.get("timestamp")
                if isinstance(dep, str) and isinstance(ts, int | float):
                    last[dep] = max(float(ts), float(last.get(dep, 0)))
            listed = set(names)
            state = {"chain_since": state["chain_since"], "read_until": now - FEED_MARGIN_S,
                     "last_event": {d: t for d, t in last.items() if d in listed}}
    if state is None:
        state = {"chain_since": now, "read_until": now - FEED_MARGIN_S, "last_event": {}}
        figures["feed_restarted"] = figures.get("feed_restarted", 0) + 1
    if state is not None and (stale or feed_ok or figures.get("feed_restarted")):
        store.put_scratch(contracts.CARRYOVER, contracts.bosh_feed(director), state, contracts.CARRYOVER_TTL_S)
    out: dict[str, str] = {}
    for n in names:
        c = cached.get(n)
        if c is None:
            out[n] = "read"
        elif now - c < ttl:
            out[n] = "fresh"
        elif (feed_ok and float(state["chain_since"]) <= c
              and float(state["last_event"].get(n, float("-inf"))) < c - FEED_MARGIN_S):
            out[n] = "revalidated"
        else:
            out[n] = "read"
    return out


def choose_reads(s: Any, store: Any, reads: list[Any]) -> tuple[list[Any], list[Any]]:
    """``concurrency.max_deployments_per_run``: the deployments to read this run, least
    recently scanned first (never scanned first of all; last run's failed scans before the
    rest), and the ones deferred to a later run."""
    cap = int(s.reconciler.concurrency.max_deployments_per_run)
    if not cap or len(reads) <= cap:
        chosen, deferred = reads, []
    else:
        scanned = store.get_scratch(contracts.CARRYOVER, contracts.BOSH_SCANNED) or {}
        retry = set(retry_first.get(store)["deployments"])
        ordered = sorted(reads, key=lambda d: (key_of(d) not in retry, float(scanned.get(key_of(d), 0)), key_of(d)))
        chosen, deferred = ordered[:cap], ordered[cap:]
        now = time.time()
        scanned = {k: v for k, v in scanned.items() if isinstance(v, int | float)}
        scanned.update({key_of(d): now for d in chosen})
        store.put_scratch(contracts.CARRYOVER, contracts.BOSH_SCANNED, scanned, contracts.CARRYOVER_TTL_S)
        log.info("bosh: reading %d of %d deployments that need a read this run "
                 "(reconciler.concurrency.max_deployments_per_run), least recently scanned first", len(chosen),
                 len(reads))
    return chosen, deferred
