"""What every ``reconciler.*`` key does in this serverless design, and the warnings for keys
that cannot act here (or not the way they are set).

``KEY_EFFECTS`` is the source of the table "key -> what it does here" in
docs/configuration.md (generated; a unit test keeps it current and complete).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .models import TEMPLATE_PARAMETER_KEYS, Metrics

# Step Functions history: a Map state over more items than this risks the 25,000-event limit.
MAX_MAP_ITEMS = 1000

_EFFECTS: list[tuple[str, str]] = [
    ("enabled", "The schedule's state (template parameter `ScheduleEnabled`). At run time Begin ends a *scheduled* "
                "run at once as `Disabled` (no lock, no reads, no writes) while it is false; forced runs "
                "(`POST /b/reconcile`, console, runner) still run."),
    ("interval", "The schedule's `ScheduleExpression` (`rate(...)`, whole minutes, rounded up); the status page's "
                 "next-run estimate."),
    ("debug", "DEBUG logging in every function (each decision, ids and names only)."),
    ("max_concurrency", "Upper bound of both Map states' `MaxConcurrency` and of the deployments one ScanBatch "
                        "Lambda scans at once."),
    ("batch_size", "Deployments per ScanBatch Lambda (the start value when `batch.adaptive_scaling` is on)."),
    ("retry_attempts", "`MaxAttempts` of the state machine's Retry blocks: a whole step (phase or batch Lambda) "
                       "failing with Unavailable/RateLimited/Lambda service errors is re-run this often "
                       "(template parameter `StateRetryMaxAttempts`)."),
    ("retry_delay", "`IntervalSeconds` of those Retry blocks (whole seconds, at least 1; doubles per attempt; "
                    "template parameter `StateRetryIntervalSeconds`)."),
    ("cache_ttl", "Revalidate after: a cached deployment detail (manifest + VMs, DynamoDB) younger than this is "
                  "used as it is; an older one is checked against BOSH's events feed (one request per 200 events "
                  "since the last run) and read again only if its deployment has an event since it was cached "
                  "(or the feed cannot be read). Kept 7 days; 0 = no cache. A forced run clears the cache."),
    ("concurrency.max_concurrent", "Deployments one ScanBatch Lambda scans at once (threads; also capped by "
                                   "`max_concurrency`)."),
    ("concurrency.max_deployments_per_run", "Most BOSH Director reads (manifest + VMs) per run; 0 = no limit. "
                                            "Details fresh or revalidated in the cache need no read; the reads go "
                                            "least recently scanned first, the rest wait for the next run (matched "
                                            "by name only; an unidentified one keeps CF/Vault orphan marking off "
                                            "for the run). Every deployment is judged within "
                                            "ceil(deployments / cap) runs."),
    ("concurrency.queue_size", f"Most items (batches) one Map state queues; beyond it the batches grow. Capped at "
                               f"{MAX_MAP_ITEMS} (Step Functions history limit): a larger value gets a warning."),
    ("concurrency.worker_pool_size", "Vault reads one ApplyBatch Lambda has in flight at once (threads)."),
    ("concurrency.overlap_phases", "Apply batches beside the scan: apply batch b starts once scan batch b and the "
                                   "batches of deployments a name cannot identify are scanned, and writes the "
                                   "instances the evidence read so far matches cleanly; Match does the rest on "
                                   "complete evidence and reports an instance written early that a later "
                                   "manifest claims. Off: the phases run in sequence."),
    ("concurrency.cooldown_period", "Pause before each ScanBatch after the first wave, before its first BOSH "
                                    "request (a batch answered from the cache does not pause); all but one of "
                                    "the batches in flight may pause at once, the others start at once."),
    ("apis.<api>.rate_limit.*", "The API's global rate limiter (GCRA in DynamoDB, shared by every Lambda): "
                                "`requests_per_second`, `burst`, `wait_timeout` (then RateLimited)."),
    ("apis.<api>.circuit_breaker.*", "The API's circuit breaker, state in DynamoDB (seen by every Lambda)."),
    ("apis.<api>.timeout", "Connect/read timeout of each HTTP request to the API."),
    ("apis.<api>.max_connections", "Connection pool size per endpoint and Lambda (callers wait for a free one)."),
    ("apis.<api>.keep_alive", "TCP keep-alive probe interval of the pooled connections."),
    ("retry.*", "Retries of one HTTP call inside a Lambda (tenacity): attempts, exponential backoff, jitter, and "
                "the error patterns that are retried."),
    ("execution.max_history_events", "Continue-as-new budget: most history events one execution of a run may "
                                     "take (the limit is 25,000; ~11 events per Map iteration, at least one "
                                     "batch per execution); past it the run goes on in a follow-up execution of "
                                     "the same run id (`phases/chain.py`)."),
    ("execution.time_share", "Continue-as-new budget: the share of `timeouts.reconciliation_run` one execution "
                             "plans to use, from the previous run's time per item or the rate limit's floor; "
                             "past it the run goes on in a follow-up execution."),
    ("batch.size", "Instances per ApplyBatch (Vault update) Lambda (the start value when adaptive)."),
    ("batch.delay", "Pause before each ApplyBatch after the first wave, before its first request (Vault "
                    "relief); all but one of the batches in flight may pause at once."),
    ("batch.max_parallel_batch", "`MaxConcurrency` of both Map states (batches in flight)."),
    ("batch.adaptive_scaling", "Both batch sizes follow the previous run's time per item, so that a batch takes about "
                               "a quarter of its step timeout, within `[min_size, max_size]`."),
    ("batch.min_size", "Lower bound of an adaptive batch size."),
    ("batch.max_size", "Upper bound of an adaptive batch size."),
    ("timeouts.reconciliation_run", "The state machine's `TimeoutSeconds` (template parameter `RunTimeoutSeconds`, "
                                    "at least 60) and the run lock's lease."),
    ("timeouts.deployment_scan", "`TimeoutSeconds` of DiscoverBosh and each ScanBatch step."),
    ("timeouts.instance_discovery", "`TimeoutSeconds` of DiscoverCF."),
    ("timeouts.vault_operations", "`TimeoutSeconds` of each ApplyBatch step, SyncIndex and Orphans."),
    ("timeouts.health_check", "Timeout of the endpoints' unauthenticated probes: CF `GET /`, BOSH `GET /info`, "
                              "Vault `sys/health` (at most the API's own timeout)."),
    ("timeouts.shutdown_grace_period", "A batch Lambda stops this long before its deadline (the Lambda timeout or "
                                       "the step's timeout, whichever is first), saves its progress and hands the "
                                       "rest to its next invocation (it always finishes at least one item)."),
    ("metrics.enabled", "CloudWatch EMF metrics of each run on/off (the run record and status stay)."),
    ("metrics.collection_interval", "Auto-refresh period of the dashboard (`GET /b/`)."),
    ("metrics.retention_period", "Lifetime (DynamoDB TTL) of run records and of the recent-error list."),
    ("metrics.export_prometheus", "`GET /b/metrics` (Prometheus text) on/off: 404 when false."),
    ("metrics.prometheus_port", "No effect: metrics are served by the Function URL (`GET /b/metrics`, HTTPS), not on "
                                "a port. A non-default value gets a warning."),
    ("backup.enabled", "Back up an instance's Vault tree before it is changed."),
    ("backup.retention_count", "Backups kept per instance (0 = all)."),
    ("backup.retention_days", "Backups older than this are removed (0 = no age limit); the newest is always kept."),
    ("backup.compression_level", "zstd level of the backup archives (1-9 mapped onto zstd's range)."),
    ("backup.cleanup_enabled", "Retention (count and days) enforced after each backup."),
    ("backup.backup_on_update", "A backup is taken before an update (with `backup.enabled`)."),
    ("backup.backup_on_delete", "A backup is taken before an instance's data is removed; that only happens when "
                                "`remediation.vault_orphan.action` is `archive`, which needs it true (else a "
                                "load error). Without archiving it has no effect, and false gets a warning."),
    ("matching.excluded_deployments", "Deployments that are platform, not service instances: never scanned or "
                                      "matched."),
    ("matching.release_services", "BOSH release -> service, for release-based matching and credential recovery."),
    ("matching.rules", "Custom matching rules, in order: a deployment -> (service, plan, instance) by a name regex "
                       "with named groups or a manifest path, with a confidence. Asked after the built-in "
                       "strategies found no instance, or first with `before: true`."),
    ("notifications.webhooks", "Webhooks POSTed at a run's end: `url`, `events` (default all: run_failed, "
                               "run_with_errors, new_findings, findings_resolved, credentials_recovered, "
                               "circuit_opened), `secret` (HMAC-SHA256 key of `X-Blacksmith-Signature`). The stack's "
                               "SNS topic gets every event too. See docs/operate.md#notifications."),
    ("notifications.timeout", "Each webhook delivery attempt's timeout."),
    ("notifications.attempts", "Delivery attempts per webhook and event (backoff 0.5 s, 1 s, 2 s ...)."),
    ("remediation.<kind>.action", "What is done about a finding kind (`cf_orphan`, `bosh_orphan`, "
                                  "`vault_orphan`, `failed_provision`, `name_mismatch`, `in_flight`): "
                                  "`report` (default: recorded and shown, nothing else). "
                                  "`vault_orphan` also accepts `archive`: verified backup, then the instance's "
                                  "Vault paths and index entry removed (undo with restore). Never a BOSH or CF "
                                  "delete."),
    ("remediation.<kind>.archive_after", "Archive a finding only once it is older than this (since first seen; "
                                         "`30d`, `12h`)."),
    ("remediation.<kind>.after_runs", "...and only after this many consecutive complete runs saw it."),
    ("bosh.vm_details", "How VM details are read: `instances` (one request per deployment: IPs, AZ, job, index) or "
     "`task` (`vms?format=full`: adds process state, DNS names, vm_type; 3 + polls requests and a Director task)."),
]
KEY_EFFECTS: dict[str, str] = dict(_EFFECTS)


def effects_table() -> str:
    """Markdown: every ``reconciler.*`` key (``<api>`` = bosh, cf, vault) and what it does here."""
    rows = ["| Key (under `reconciler.`) | What it does here |", "| --- | --- |"]
    rows += [f"| `{key}` | {text} |" for key, text in _EFFECTS]
    return "\n".join(rows)


def effect_of(key: str) -> str | None:
    """The effect text of a dotted key under ``reconciler.`` (``apis.cf.timeout`` -> the ``apis.<api>`` row)."""
    parts = key.split(".")
    candidates = [key]
    if parts[0] == "apis" and len(parts) >= 3:
        rest = parts[2:]
        candidates += [".".join(["apis", "<api>", *rest]), ".".join(["apis", "<api>", rest[0], "*"])]
    if parts[0] == "remediation" and len(parts) == 3:
        candidates.append(".".join(["remediation", "<kind>", parts[2]]))
    if len(parts) >= 2:
        candidates.append(parts[0] + ".*")
    return next((KEY_EFFECTS[c] for c in candidates if c in KEY_EFFECTS), None)


def inert_warnings(settings: Any) -> list[str]:
    """Keys set to a value that cannot act here (or only partly)."""
    rc = settings.reconciler
    out = []
    default_port = Metrics.model_fields["prometheus_port"].default
    if rc.metrics.prometheus_port != default_port:
        out.append(f"reconciler.metrics.prometheus_port = {rc.metrics.prometheus_port} has no effect: metrics are "
                   "served by the Function URL at GET /b/metrics (HTTPS), not on a port")
    archiving = any(getattr(p, "action", "report") == "archive" for _, p in rc.remediation)
    if not rc.backup.backup_on_delete and not archiving:
        out.append("reconciler.backup.backup_on_delete = false has no effect: the reconciler deletes an "
                   "instance's data only when reconciler.remediation.vault_orphan.action is archive")
    if rc.concurrency.queue_size > MAX_MAP_ITEMS:
        out.append(f"reconciler.concurrency.queue_size = {rc.concurrency.queue_size} is capped at {MAX_MAP_ITEMS} "
                   "items per Map state (Step Functions' 25,000-event history limit); batches grow instead")
    return out


# Environment variables the template sets from the deploy-time parameters (Globals).
DEPLOYED_PARAMETER_ENV: dict[str, str] = {
    "ScheduleExpression": "SCHEDULE_EXPRESSION",
    "ScheduleEnabled": "SCHEDULE_ENABLED",
    "RunTimeoutSeconds": "RUN_TIMEOUT_SECONDS",
    "StateRetryMaxAttempts": "STATE_RETRY_MAX_ATTEMPTS",
    "StateRetryIntervalSeconds": "STATE_RETRY_INTERVAL_SECONDS",
}


def deployment_drift(settings: Any, environ: Mapping[str, str]) -> list[str]:
    """Warnings for deploy-time parameters that disagree with the configuration (the SSM file
    changed, the stack was not redeployed). A variable the template does not set is skipped."""
    wanted = settings.reconciler.template_parameters()
    out = []
    for param, var in DEPLOYED_PARAMETER_ENV.items():
        deployed = (environ.get(var) or "").strip()
        if not deployed or deployed.lower() == wanted[param].lower():
            continue
        key = "reconciler." + ".".join(TEMPLATE_PARAMETER_KEYS[param])
        out.append(f"{key} asks for {param}={wanted[param]!r} but the stack was deployed with {deployed!r}: "
                   f"redeploy with --parameter-overrides \"$(python -m reconciler.config parameters FILE)\"")
    return out
