"""Prometheus exposition of the stored figures (prometheus_client, custom collector).

The eight names of the spec are kept exactly. Those ending in ``_total`` are counters;
``runs_successful`` and ``runs_failed`` carry no ``_total`` suffix in the spec, which a
counter family would add, so they are exposed untyped under their exact names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..domain.findings import FindingKind

PREFIX = "blacksmith_reconciler"


def _num(figures: Mapping[str, Any], key: str) -> float:
    try:
        return float(figures.get(key) or 0)
    except (TypeError, ValueError):
        return 0.0


def _untyped(name: str, doc: str, value: float) -> Metric:
    metric = Metric(name, doc, "unknown")
    metric.add_sample(name, {}, value)
    return metric


class StoredFiguresCollector:
    """Yields metric families from a snapshot of the stored figures."""

    def __init__(self, figures: Mapping[str, Any], orphans: Mapping[str, int], running: bool,
                 shares: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.figures = figures
        self.orphans = orphans
        self.running = running
        # [{kind, foundation, director, count}] (api/status.orphan_shares); absent: counts, unlabelled
        self.shares = list(shares) if shares is not None else [
            {"kind": kind.value, "foundation": "", "director": "", "count": orphans.get(kind.value, 0)}
            for kind in FindingKind]

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        yield CounterMetricFamily(f"{PREFIX}_runs", "Total reconciliation runs", value=_num(f, "runs_total"))
        yield _untyped(f"{PREFIX}_runs_successful", "Successful reconciliation runs", _num(f, "runs_successful"))
        yield _untyped(f"{PREFIX}_runs_failed", "Failed reconciliation runs", _num(f, "runs_failed"))
        yield GaugeMetricFamily(f"{PREFIX}_last_run_duration_seconds", "Duration of the last run",
                                value=_num(f, "last_run_duration_s"))
        yield GaugeMetricFamily(f"{PREFIX}_average_run_duration_seconds", "Average run duration",
                                value=_num(f, "duration_total_s") / max(_num(f, "runs_total"), 1.0))
        yield CounterMetricFamily(f"{PREFIX}_deployments", "Deployments scanned",
                                  value=_num(f, "deployments_total"))
        yield CounterMetricFamily(f"{PREFIX}_instances_found", "Service instances matched",
                                  value=_num(f, "instances_found_total"))
        yield CounterMetricFamily(f"{PREFIX}_instances_synced", "Service instances synchronised",
                                  value=_num(f, "instances_synced_total"))
        yield CounterMetricFamily(f"{PREFIX}_errors", "Errors encountered", value=_num(f, "errors_total"))
        yield CounterMetricFamily(f"{PREFIX}_runs_with_errors", "Runs that finished succeeded_with_errors",
                                  value=_num(f, "runs_with_errors_total"))
        yield CounterMetricFamily(f"{PREFIX}_instances_not_reconciled",
                                  "Instances a run meant to reconcile and did not",
                                  value=_num(f, "instances_not_reconciled_total"))
        yield GaugeMetricFamily(f"{PREFIX}_last_run_instances_not_reconciled",
                                "Instances the last finished run did not reconcile",
                                value=_num(f, "last_run_instances_not_reconciled"))
        yield CounterMetricFamily(f"{PREFIX}_backups_written", "Backups written",
                                  value=_num(f, "backups_written_total"))
        yield CounterMetricFamily(f"{PREFIX}_cache_hits", "Deployment cache hits", value=_num(f, "cache_hits_total"))
        yield CounterMetricFamily(f"{PREFIX}_cache_misses", "Deployment cache misses",
                                  value=_num(f, "cache_misses_total"))
        yield GaugeMetricFamily(f"{PREFIX}_running", "1 while a reconciliation runs",
                                value=1.0 if self.running else 0.0)
        yield self._histogram()
        yield from self._per_api()
        yield from self._findings()

    def _findings(self) -> Iterator[Metric]:
        """Per kind and share: an instance is (foundation, guid), a deployment (director, name)."""
        share = ["foundation", "director"]
        orphans = GaugeMetricFamily(f"{PREFIX}_orphans", "Orphans by type", labels=["type", *share])
        findings = GaugeMetricFamily(f"{PREFIX}_findings", "Findings by kind (orphans, failed provisions, "
                                     "name mismatches, operations in flight)", labels=["kind", *share])
        for row in self.shares:
            labels = [str(row["kind"]), str(row.get("foundation") or ""), str(row.get("director") or "")]
            orphans.add_metric(labels, float(row.get("count") or 0))
            findings.add_metric(labels, float(row.get("count") or 0))
        yield orphans
        yield findings

    def _histogram(self) -> Metric:
        # the store keeps cumulative Prometheus-style buckets: {"buckets": {"10": n, ..., "+Inf": n}, "sum", "count"}
        hist = self.figures.get("run_duration_seconds") or {}
        buckets = [(bound, float(count)) for bound, count in (hist.get("buckets") or {}).items() if bound != "+Inf"]
        buckets.sort(key=lambda b: float(b[0]))
        buckets.append(("+Inf", float((hist.get("buckets") or {}).get("+Inf", hist.get("count", 0)) or 0)))
        return HistogramMetricFamily(f"{PREFIX}_run_duration_seconds", "Run duration", buckets=buckets,
                                     sum_value=float(hist.get("sum", 0) or 0))

    def _per_api(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(f"{PREFIX}_api_requests", "Requests to external APIs", labels=["api"])
        errors = CounterMetricFamily(f"{PREFIX}_api_errors", "Failed requests to external APIs", labels=["api"])
        for key, value in sorted(self.figures.items()):
            if "__m_" in key:
                continue  # per foundation or director: _per_member
            if key.startswith("api_requests_total__"):
                requests.add_metric([key.split("__", 1)[1]], float(value or 0))
            elif key.startswith("api_errors_total__"):
                errors.add_metric([key.split("__", 1)[1]], float(value or 0))
        yield requests
        yield errors
        yield from self._per_member()

    def _per_member(self) -> Iterator[Metric]:
        """The same per foundation and director (``api_requests_total__cf__m_<hex name>``)."""
        labels = ["api", "foundation", "director"]
        requests = CounterMetricFamily(f"{PREFIX}_member_api_requests",
                                       "Requests to external APIs per foundation or director", labels=labels)
        errors = CounterMetricFamily(f"{PREFIX}_member_api_errors",
                                     "Failed requests to external APIs per foundation or director", labels=labels)
        for key, value in sorted(self.figures.items()):
            parsed = member_key(key)
            if parsed is None:
                continue
            family, api, member = parsed
            row = [api, member if api == "cf" else "", member if api == "bosh" else ""]
            (requests if family == "requests" else errors).add_metric(row, float(value or 0))
        yield requests
        yield errors


def member_key(key: str) -> tuple[str, str, str] | None:
    """``(requests|errors, api, member)`` of a per-member counter name, else None."""
    for family in ("requests", "errors"):
        head = f"api_{family}_total__"
        if key.startswith(head) and "__m_" in key:
            api, _, hexname = key[len(head):].partition("__m_")
            try:
                return family, api, bytes.fromhex(hexname).decode()
            except ValueError:
                return None
    return None


def render(figures: Mapping[str, Any], orphans: Mapping[str, int], running: bool,
           shares: Sequence[Mapping[str, Any]] | None = None) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoredFiguresCollector(figures, orphans, running, shares))
    return generate_latest(registry).decode()
