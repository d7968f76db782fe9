"""DiscoverCF (phase 1): our broker's service instances, plans and bindings in every foundation.

Bulk results go to the run's scratch item ``cf``; the state gets counts and a status. CF
down (every foundation failed) -> status ``failed``: the run goes on BOSH-only.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import progress
from ..errors import CircuitOpen, Unavailable
from . import contracts, runtime, sources
from .deps import Deps

log = logging.getLogger("reconciler.phases.discover_cf")


def discover_foundation(client: Any, budget: runtime.Budget) -> Any:
    """One foundation's discovery. One that failed on a transient error (a request failed all
    its retries: with the CF breaker's ``failure_threshold`` 3 those retries open it) is run once
    more, waiting once for the breaker's trial when that fits in the step's time (a CF that is
    down costs the step one breaker timeout, 30 s by default, no more): one unlucky request
    out of the hundreds of a discovery must not cost the run its CF view. Anything else (an
    answer CF gave, a refused TLS certificate) stays failed at once."""
    result = client.discover(with_bindings=True)
    cause = result.cause
    if str(result.status) == "ok" or not isinstance(cause, Unavailable) or cause.tls:
        return result
    log.warning("cf:%s: discovery failed (%s); trying once more", client.name, result.error)
    last = [result]

    def again() -> Any:
        last[0] = client.discover(with_bindings=True)
        if isinstance(last[0].cause, CircuitOpen):
            raise last[0].cause
        return last[0]

    try:
        return runtime.through_open_breaker(again, budget, what=f"cf:{client.name}: discovery", waits=1)
    except CircuitOpen:  # its trial does not fit (or failed each time): the run goes on without it
        return last[0]


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    run = contracts.parse(contracts.RunInput, event, "run").run
    s, store = deps.settings, deps.store
    progress.phase_started(store, run.run_id, "Discover")
    if not s.cf_foundations:
        log.info("cf: no foundation configured; CF discovery skipped")
        return {"source": "cf", "status": "skipped", "error": "no cf foundation configured", "instances": 0}
    timeouts = run.timeouts
    budget = runtime.Budget(context, timeout_s=timeouts.instance_discovery if timeouts else None)
    results = [discover_foundation(client, budget) for client in sources.cf_foundations(s, store)]
    failed = [r for r in results if str(r.status) != "ok"]
    selection = run.selection or {}
    wanted_ids = set(selection.get("instances") or [])
    wanted_services = set(selection.get("services") or [])
    data: dict[str, Any] = {"instances": [], "catalog": [], "bindings": [], "brokers": [], "endpoints": {}}
    for r in results:
        d = r.to_dict()
        instances = d["instances"]
        if wanted_ids or wanted_services:
            instances = [i for i in instances if i["guid"] in wanted_ids or i["service_id"] in wanted_services]
        keep = {i["guid"] for i in instances}
        data["instances"] += instances
        data["catalog"] += d["catalog"]
        data["bindings"] += [b for b in d["bindings"] if b["instance_guid"] in keep]
        data["brokers"].append({"foundation": r.foundation, **d["broker"]})
        data["endpoints"][r.foundation] = d["endpoints"]  # UAA's links: later phases' clients skip the root
    for r in failed:
        store.record_error(run.run_id, "DiscoverCF", f"cf:{r.foundation}", r.error or "discovery failed")
        log.error("cf:%s: service broker discovery failed: %s", r.foundation, r.error or "unknown error")
    status = "failed" if failed else "ok"  # orphan marking needs every foundation's full answer
    if failed and len(failed) == len(results):
        reasons = "; ".join(f"{r.foundation}: {r.error}" for r in failed)
        return {"source": "cf", "status": "failed", "error": reasons[:500], "instances": 0, "recorded": True}
    store.put_scratch(run.run_id, contracts.CF, data, runtime.scratch_ttl(s))
    log.info("cf: %d instances of our broker in %d foundation(s)", len(data["instances"]), len(results),
             extra={"instances": len(data["instances"]), "bindings": len(data["bindings"]),
                    "plans": len(data["catalog"]), "failed_foundations": len(failed)})
    if log.isEnabledFor(logging.DEBUG):
        for i in data["instances"]:
            log.debug("cf: instance %s service %s plan %s (space %s)", i.get("guid"), i.get("service_id"),
                      i.get("plan_id"), i.get("space_guid"))
    return {"source": "cf", "status": status, "foundations": len(results), "instances": len(data["instances"]),
            "bindings": len(data["bindings"]), "plans": len(data["catalog"]),
            "selective": bool(wanted_ids or wanted_services), "recorded": bool(failed),
            "failed_foundations": sorted(r.foundation for r in failed),
            "ok_foundations": sorted(r.foundation for r in results if str(r.status) == "ok"),
            "ignored": sum(r.ignored for r in results), "skipped_records": sum(len(r.skipped) for r in results)}
