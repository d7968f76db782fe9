"""Run records, metrics (counters, gauges, the run-duration histogram) and the error ring buffer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from reconciler.errors import InvalidInput, NotFound
from reconciler.redaction import redact_text

from .table import METRIC_NAME, Tables, iso_time, item_key, to_dynamo


class RunRecords(Tables):
    """What each run did and the figures across runs (state table: ``runs``, ``runid``, ``metrics``, ``errors``)."""

    @staticmethod
    def _metric_names(values: Mapping[str, Any]) -> None:
        bad = [k for k in values if not METRIC_NAME.match(k)]
        if bad:
            raise InvalidInput(f"metric name(s) {bad} invalid: lower-case letters, digits and _ only")

    def add_metrics(self, **deltas: float) -> None:
        """Atomic ``ADD`` of each delta to its counter (concurrent Lambdas never lose counts)."""
        self._update_metrics("counters", "ADD", {k: v for k, v in deltas.items() if v})

    def set_metrics(self, **values: Any) -> None:
        """Gauges (last_run_duration_s, last_run_time, ...): last write wins."""
        self._update_metrics("gauges", "SET", values)

    def _update_metrics(self, sk: str, action: str, values: Mapping[str, Any]) -> None:
        """One ``update_item`` on the metrics item ``sk``: ``ADD #n :v`` or ``SET #n = :v`` per value."""
        if not values:
            return
        self._metric_names(values)
        names = {f"#m{i}": k for i, k in enumerate(values)}
        vals = {f":m{i}": to_dynamo(v, k) for i, (k, v) in enumerate(values.items())}
        sep = " " if action == "ADD" else " = "
        expr = f"{action} " + ", ".join(f"#m{i}{sep}:m{i}" for i in range(len(values)))
        self._call("update_item", TableName=self.state_table, Key=item_key("metrics", sk),
                   UpdateExpression=expr, ExpressionAttributeNames=names, ExpressionAttributeValues=vals)

    def observe_run_duration(self, seconds: float) -> None:
        """One observation into the run-duration histogram (per-bucket ADD, plus sum and count)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidInput(f"run duration {seconds!r}: a finite number of seconds >= 0 is accepted")
        index = next((i for i, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        self._call("update_item", TableName=self.state_table, Key=item_key("metrics", "histogram#run_duration"),
                   UpdateExpression="ADD #b :one, #s :s, #c :one",
                   ExpressionAttributeNames={"#b": f"b{index}", "#s": "sum", "#c": "count"},
                   ExpressionAttributeValues={":one": {"N": "1"}, ":s": to_dynamo(float(seconds))})

    def get_metrics(self) -> dict[str, Any]:
        """Counters and gauges in one flat dict, plus the run-duration histogram twice:
        ``run_duration_seconds = {"buckets": {"10": n, ..., "+Inf": n} (cumulative, Prometheus
        style), "sum", "count"}`` and ``run_duration_buckets = {"le_10": n, ...}`` (per bucket)."""
        items = {i["sk"]: i for i in self._query(self.state_table, "metrics")}
        out: dict[str, Any] = {}
        for sk in ("counters", "gauges"):
            out.update({k: v for k, v in (items.get(sk) or {}).items() if k not in ("pk", "sk")})
        hist = items.get("histogram#run_duration") or {}
        cumulative, buckets, per_bucket = 0, {}, {}
        for i, bound in enumerate(self.buckets):
            cumulative += int(hist.get(f"b{i}", 0))
            buckets[f"{bound:g}"] = cumulative
            per_bucket[f"le_{bound:g}"] = int(hist.get(f"b{i}", 0))
        out["run_duration_buckets"] = per_bucket
        buckets["+Inf"] = cumulative + int(hist.get(f"b{len(self.buckets)}", 0))
        out["run_duration_seconds"] = {"buckets": buckets, "sum": float(hist.get("sum", 0)),
                                       "count": int(hist.get("count", 0))}
        return out

    def record_error(self, run_id: str, phase: str, target: str, message: str) -> None:
        """Keep an error in a ring buffer of ``max_errors`` slots (bounded storage, two writes).
        The text is masked like the logs (it is shown by /b/status and the dashboard): a remote
        error that echoes ``password=...`` or a token does not reach them."""

        target, message = redact_text(str(target)), redact_text(str(message))
        seq = self._call("update_item", TableName=self.state_table, Key=item_key("errors", "#seq"),
                         UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}},
                         ReturnValues="UPDATED_NEW")["Attributes"]["n"]["N"]
        seq = int(seq)
        item = {"pk": "errors", "sk": f"slot#{seq % self.max_errors:05d}", "seq": seq, "time": iso_time(self.clock()),
                "run_id": str(run_id), "phase": str(phase), "target": str(target)[:500],
                "message": str(message)[:2000]}
        if self.error_ttl_s:
            item["expires_at"] = int(math.ceil(self.clock() + self.error_ttl_s))
        with contextlib.suppress(ClientError):  # a newer error already took the slot
            self._call("put_item", TableName=self.state_table, Item=to_dynamo(item)["M"],
                       ConditionExpression="attribute_not_exists(seq) OR seq < :seq",
                       ExpressionAttributeValues={":seq": {"N": str(seq)}})

    def recent_errors(self, limit: int = 50) -> list[dict]:
        items = self._query(self.state_table, "errors", prefix="slot#", consistent=False)
        items.sort(key=lambda i: i["seq"], reverse=True)
        return [{k: v for k, v in i.items() if k not in ("pk", "sk")} for i in items[:max(0, limit)]]

    def put_run(self, run: dict) -> None:
        run_id = str(run.get("run_id") or "")
        if not run_id:
            raise InvalidInput("run record needs a run_id")
        run = dict(run)
        run.setdefault("started_at", iso_time(self.clock()))
        sk = f"{run['started_at']}#{run_id}"
        expires = int(self.clock() + self.run_ttl_s)
        record = to_dynamo({**run, "pk": "runs", "sk": sk, "expires_at": expires}, "run")["M"]
        pointer = to_dynamo({"pk": "runid", "sk": run_id, "run_sk": sk, "expires_at": expires})["M"]
        self._call("transact_write_items", TransactItems=[
            {"Put": {"TableName": self.state_table, "Item": record}},
            {"Put": {"TableName": self.state_table, "Item": pointer}}])
        self._run_keys[run_id] = sk

    def _run_sk(self, run_id: str) -> str | None:
        if run_id not in self._run_keys:
            pointer = self._get(self.state_table, "runid", run_id)
            if pointer is None:
                return None
            self._run_keys[run_id] = pointer["run_sk"]
        return self._run_keys[run_id]

    def update_run(self, run_id: str, **fields: Any) -> None:
        fixed = {"run_id", "started_at", "pk", "sk", "expires_at"} & set(fields)
        if fixed:
            raise InvalidInput(f"run field(s) {sorted(fixed)} cannot be changed after put_run")
        if not fields:
            return
        sk = self._run_sk(run_id)
        if sk is None:
            raise NotFound(f"run {run_id} has no record (put_run first)", api="dynamodb")
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":f{i}": to_dynamo(v, k) for i, (k, v) in enumerate(fields.items())}
        try:
            self._call("update_item", TableName=self.state_table, Key=item_key("runs", sk),
                       UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
                       ConditionExpression="attribute_exists(pk)",
                       ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError:
            raise NotFound(f"run {run_id} has no record (expired?)", api="dynamodb") from None

    def get_run(self, run_id: str) -> dict | None:
        sk = self._run_sk(run_id)
        item = None if sk is None else self._get(self.state_table, "runs", sk)
        return None if item is None else {k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")}

    def list_runs(self, limit: int = 20) -> list[dict]:
        items = self._query(self.state_table, "runs", forward=False, limit=max(1, limit), consistent=False)
        return [{k: v for k, v in i.items() if k not in ("pk", "sk", "expires_at")} for i in items[:limit]]
