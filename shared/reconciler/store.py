"""DynamoDB store: deployment-detail cache, metrics, run records, run lock, orphans,
per-run scratch data and the shared state of the resilience guards.

Two tables (names from ``CACHE_TABLE`` / ``STATE_TABLE``), both keyed ``pk`` (S) + ``sk`` (S)
with the TTL attribute ``expires_at`` (epoch seconds). DynamoDB deletes expired items lazily
(hours later, never under moto), so every read here filters on ``expires_at`` itself.

Item layout (``pk`` / ``sk``):

==========================  =============================  ===========================================
cache table                 ``deployment#<director>``       ``<deployment name>``: compressed detail
either table                ``chunk#<pk>#<sk>#<gen>``       ``00000``...: chunks of a large value
state table                 ``metrics``                     ``counters`` (ADD), ``gauges`` (SET),
                                                            ``histogram#run_duration``
state table                 ``errors``                      ``#seq`` counter, ``slot#NNNN`` ring buffer
state table                 ``runs``                        ``<started_at>#<run_id>`` (newest first)
state table                 ``runid``                       ``<run_id>`` -> the run's sort key
state table                 ``lock``                        ``run`` (lease in ``expires_at``)
state table                 ``orphans``                     ``state`` (compressed)
state table                 ``scratch#<run_id>``            ``<key>`` (compressed, TTL)
state table                 ``guard``                       ``<api>:<endpoint>`` (resilience/state.py)
==========================  =============================  ===========================================

Large values (deployment details, scratch, orphans) are JSON compressed with zstandard;
above ~350 KB compressed they are split over chunk items written before the head item,
so a reader never sees a head whose chunks are missing (a new generation id per write).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import zstandard
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.domain.findings import FindingKind
from reconciler.errors import ConfigError, InvalidInput, NotFound, RunLocked, Unavailable

log = logging.getLogger(__name__)

INLINE_MAX = 350_000  # compressed bytes kept in the head item (DynamoDB item limit: 400 KB)
CHUNK_SIZE = 350_000
DEFAULT_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600)  # run duration, seconds (= api.metrics_text)
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*\Z")
MAX_SORT_KEY_BYTES = 1024  # DynamoDB's limit for a sort key value


def _fits_key(value: str) -> bool:
    return isinstance(value, str) and 0 < len(value.encode("utf-8", "surrogatepass")) <= MAX_SORT_KEY_BYTES
_ZSTD_LEVEL = 3


# --- value conversion -----------------------------------------------------------------


def _to_dynamo(value: Any, where: str = "value") -> Any:
    """Python JSON-like value -> boto3 attribute value (floats become Decimal)."""
    if isinstance(value, bool) or value is None:
        return {"BOOL": value} if isinstance(value, bool) else {"NULL": True}
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{where}: {value!r} cannot be stored (finite numbers only)")
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): _to_dynamo(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_to_dynamo(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise InvalidInput(f"{where}: {type(value).__name__} cannot be stored (JSON types only)")


def _from_dynamo(attr: Mapping[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() and "." not in value and "e" not in value.lower() \
            else float(number)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(value)
    if kind == "M":
        return {k: _from_dynamo(v) for k, v in value.items()}
    if kind == "L":
        return [_from_dynamo(v) for v in value]
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {float(v) for v in value}
    raise InvalidInput(f"unsupported DynamoDB attribute type {kind}")


def item_to_dict(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if item is None else {k: _from_dynamo(v) for k, v in item.items()}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _encode(value: Any, what: str) -> bytes:
    try:
        raw = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what}: value is not JSON-serialisable ({exc})") from None
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(raw)


def _decode(blob: bytes) -> Any:
    return json.loads(zstandard.ZstdDecompressor().decompress(blob))


def create_tables(client: Any, cache_table: str, state_table: str) -> None:
    """Create both tables (pay-per-request, TTL on ``expires_at``) as template.yaml declares
    them; for tests and the embedded engine. Existing tables are left alone."""
    for name in (cache_table, state_table):
        try:
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            continue
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        client.update_time_to_live(TableName=name,
                                   TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})


class Store:
    """All DynamoDB access of the reconciler. Thread-safe (boto3 clients are)."""

    def __init__(self, cache_table: str, state_table: str, client: Any = None, *, clock=time.time,
                 max_errors: int = 100, run_ttl_s: float = 90 * 86400, error_ttl_s: float | None = None,
                 duration_buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        if not cache_table or not state_table:
            raise ConfigError("Store needs both table names (CACHE_TABLE and STATE_TABLE)")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client("dynamodb", config=Config(
                retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=10))
        self.client = client
        self.cache_table = cache_table
        self.state_table = state_table
        self.clock = clock
        self.max_errors = max(1, int(max_errors))
        self.run_ttl_s = run_ttl_s
        self.error_ttl_s = error_ttl_s  # None: errors stay until their ring slot is reused
        self.buckets = tuple(sorted(float(b) for b in duration_buckets))
        self._run_keys: dict[str, str] = {}  # run_id -> sort key of its record (per process)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, client: Any = None, **kwargs: Any) -> Store:
        env = os.environ if env is None else env
        missing = [n for n in ("CACHE_TABLE", "STATE_TABLE") if not env.get(n)]
        if missing:
            raise ConfigError(f"environment variable(s) {', '.join(missing)} not set: the DynamoDB table names")
        return cls(env["CACHE_TABLE"], env["STATE_TABLE"], client, **kwargs)

    # --- low-level helpers -------------------------------------------------------------

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call; infrastructure failures become domain errors naming table and op."""
        try:
            return getattr(self.client, op)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise
            table = kwargs.get("TableName", "")
            if code == "ResourceNotFoundException":
                raise ConfigError(f"DynamoDB table {table!r} does not exist ({op})") from None
            raise Unavailable(f"DynamoDB {op} on {table!r} failed: {code}", api="dynamodb") from None
        except BotoCoreError as exc:
            raise Unavailable(f"DynamoDB {op} on {kwargs.get('TableName', '')!r} failed: "
                              f"{type(exc).__name__}", api="dynamodb") from None

    def _live(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if item is None:
            return None
        exp = item.get("expires_at")
        if exp is not None and float(exp) <= self.clock():
            return None
        return item

    def _get(self, table: str, pk: str, sk: str, consistent: bool = True) -> dict[str, Any] | None:
        out = self._call("get_item", TableName=table, Key=_key(pk, sk), ConsistentRead=consistent)
        return self._live(item_to_dict(out.get("Item")))

    def _query(self, table: str, pk: str, *, prefix: str | None = None, forward: bool = True,
               limit: int | None = None, consistent: bool = True) -> list[dict[str, Any]]:
        """All live items of one partition (optionally with an sk prefix), paging through."""
        cond = "pk = :pk" + (" AND begins_with(sk, :p)" if prefix else "")
        values: dict[str, Any] = {":pk": {"S": pk}}
        if prefix:
            values[":p"] = {"S": prefix}
        kwargs: dict[str, Any] = {"TableName": table, "KeyConditionExpression": cond,
                                  "ExpressionAttributeValues": values, "ScanIndexForward": forward,
                                  "ConsistentRead": consistent}
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = max(limit - len(items), 1) + 5
            out = self._call("query", **kwargs)
            for raw in out.get("Items", []):
                item = self._live(item_to_dict(raw))
                if item is not None:
                    items.append(item)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if "LastEvaluatedKey" not in out:
                return items
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    def _batch_write(self, table: str, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), 25):
            pending = {table: requests[start:start + 25]}
            for attempt in range(8):
                out = self._call("batch_write_item", RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2 ** attempt, 2.0))
            else:
                raise Unavailable(f"DynamoDB batch write to {table!r} left items unprocessed", api="dynamodb")

    # --- large values (chunked, compressed) --------------------------------------------

    def _put_blob(self, table: str, pk: str, sk: str, value: Any, expires_at: float | None,
                  extra: Mapping[str, Any] | None = None) -> None:
        blob = _encode(value, f"{pk}/{sk}")
        head: dict[str, Any] = {"pk": pk, "sk": sk, **(extra or {}), "size": len(blob)}
        if expires_at is not None:
            head["expires_at"] = int(math.ceil(expires_at))
        if len(blob) <= INLINE_MAX:
            head.update(z=blob, n=0)
        else:
            gen = uuid.uuid4().hex[:12]
            parts = [blob[i:i + CHUNK_SIZE] for i in range(0, len(blob), CHUNK_SIZE)]
            chunk_pk = f"chunk#{pk}#{sk}#{gen}"
            writes = []
            for i, part in enumerate(parts):
                chunk = {"pk": chunk_pk, "sk": f"{i:05d}", "z": part}
                if expires_at is not None:
                    chunk["expires_at"] = head["expires_at"]
                writes.append({"PutRequest": {"Item": _to_dynamo(chunk)["M"]}})
            self._batch_write(table, writes)  # chunks first: a visible head always has its chunks
            head.update(n=len(parts), gen=gen, sha256=hashlib.sha256(blob).hexdigest())
        out = self._call("put_item", TableName=table, Item=_to_dynamo(head)["M"], ReturnValues="ALL_OLD")
        self._drop_chunks(table, item_to_dict(out.get("Attributes")))

    def _drop_chunks(self, table: str, old_head: dict[str, Any] | None) -> None:
        """Delete the chunks of a replaced or deleted head (best effort: TTL or the next clear
        removes leftovers; readers never follow an old generation)."""
        if not old_head or not old_head.get("n"):
            return
        chunk_pk = f"chunk#{old_head['pk']}#{old_head['sk']}#{old_head.get('gen', '')}"
        try:
            self._batch_write(table, [{"DeleteRequest": {"Key": _key(chunk_pk, f"{i:05d}")}}
                                      for i in range(int(old_head["n"]))])
        except Unavailable as exc:
            log.warning("could not delete old chunks of %s/%s: %s", old_head["pk"], old_head["sk"], exc)

    def _read_blob(self, table: str, head: dict[str, Any]) -> Any:
        if not head.get("n"):
            return _decode(head["z"])
        chunk_pk = f"chunk#{head['pk']}#{head['sk']}#{head.get('gen', '')}"
        chunks = self._query(table, chunk_pk)
        blob = b"".join(c["z"] for c in sorted(chunks, key=lambda c: c["sk"]))
        if len(chunks) != int(head["n"]) or hashlib.sha256(blob).hexdigest() != head.get("sha256"):
            raise Unavailable(f"stored value {head['pk']}/{head['sk']} is incomplete "
                              f"({len(chunks)} of {head['n']} chunks)", api="dynamodb")
        return _decode(blob)

    # --- deployment-detail cache -------------------------------------------------------

    def get_cached_deployment(self, director: str, name: str) -> dict | None:
        if not _fits_key(name):
            return None  # a name DynamoDB cannot key on is simply never cached
        head = self._get(self.cache_table, f"deployment#{director}", name, consistent=False)
        return None if head is None else self._read_blob(self.cache_table, head)

    def put_cached_deployment(self, director: str, name: str, detail: dict, ttl_s: float) -> None:
        if ttl_s <= 0 or not _fits_key(name):
            return  # cache_ttl 0 disables the cache; a hostile 2 KB name must not fail the scan batch
        self._put_blob(self.cache_table, f"deployment#{director}", name, detail, self.clock() + ttl_s,
                       {"kind": "deployment", "cached_at": _iso(self.clock())})

    def clear_cache(self) -> int:
        """Delete every cache item (expired ones too); returns how many cached details went."""
        keys: list[dict[str, Any]] = []
        entries = 0
        kwargs: dict[str, Any] = {"TableName": self.cache_table, "ProjectionExpression": "pk, sk, kind"}
        while True:
            out = self._call("scan", **kwargs)
            for raw in out.get("Items", []):
                keys.append({"pk": raw["pk"], "sk": raw["sk"]})
                entries += raw.get("kind", {}).get("S") == "deployment"
            if "LastEvaluatedKey" not in out:
                break
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        self._batch_write(self.cache_table, [{"DeleteRequest": {"Key": k}} for k in keys])
        return entries

    # --- metrics -----------------------------------------------------------------------

    @staticmethod
    def _metric_names(values: Mapping[str, Any]) -> None:
        bad = [k for k in values if not _METRIC_NAME.match(k)]
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
        vals = {f":m{i}": _to_dynamo(v, k) for i, (k, v) in enumerate(values.items())}
        sep = " " if action == "ADD" else " = "
        expr = f"{action} " + ", ".join(f"#m{i}{sep}:m{i}" for i in range(len(values)))
        self._call("update_item", TableName=self.state_table, Key=_key("metrics", sk),
                   UpdateExpression=expr, ExpressionAttributeNames=names, ExpressionAttributeValues=vals)

    def observe_run_duration(self, seconds: float) -> None:
        """One observation into the run-duration histogram (per-bucket ADD, plus sum and count)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidInput(f"run duration {seconds!r}: a finite number of seconds >= 0 is accepted")
        index = next((i for i, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        self._call("update_item", TableName=self.state_table, Key=_key("metrics", "histogram#run_duration"),
                   UpdateExpression="ADD #b :one, #s :s, #c :one",
                   ExpressionAttributeNames={"#b": f"b{index}", "#s": "sum", "#c": "count"},
                   ExpressionAttributeValues={":one": {"N": "1"}, ":s": _to_dynamo(float(seconds))})

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
        from .observability import redact_text

        target, message = redact_text(str(target)), redact_text(str(message))
        seq = self._call("update_item", TableName=self.state_table, Key=_key("errors", "#seq"),
                         UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}},
                         ReturnValues="UPDATED_NEW")["Attributes"]["n"]["N"]
        seq = int(seq)
        item = {"pk": "errors", "sk": f"slot#{seq % self.max_errors:05d}", "seq": seq, "time": _iso(self.clock()),
                "run_id": str(run_id), "phase": str(phase), "target": str(target)[:500],
                "message": str(message)[:2000]}
        if self.error_ttl_s:
            item["expires_at"] = int(math.ceil(self.clock() + self.error_ttl_s))
        with contextlib.suppress(ClientError):  # a newer error already took the slot
            self._call("put_item", TableName=self.state_table, Item=_to_dynamo(item)["M"],
                       ConditionExpression="attribute_not_exists(seq) OR seq < :seq",
                       ExpressionAttributeValues={":seq": {"N": str(seq)}})

    def recent_errors(self, limit: int = 50) -> list[dict]:
        items = self._query(self.state_table, "errors", prefix="slot#", consistent=False)
        items.sort(key=lambda i: i["seq"], reverse=True)
        return [{k: v for k, v in i.items() if k not in ("pk", "sk")} for i in items[:max(0, limit)]]

    # --- run records -------------------------------------------------------------------

    def put_run(self, run: dict) -> None:
        run_id = str(run.get("run_id") or "")
        if not run_id:
            raise InvalidInput("run record needs a run_id")
        run = dict(run)
        run.setdefault("started_at", _iso(self.clock()))
        sk = f"{run['started_at']}#{run_id}"
        expires = int(self.clock() + self.run_ttl_s)
        record = _to_dynamo({**run, "pk": "runs", "sk": sk, "expires_at": expires}, "run")["M"]
        pointer = _to_dynamo({"pk": "runid", "sk": run_id, "run_sk": sk, "expires_at": expires})["M"]
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
        values = {f":f{i}": _to_dynamo(v, k) for i, (k, v) in enumerate(fields.items())}
        try:
            self._call("update_item", TableName=self.state_table, Key=_key("runs", sk),
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

    # --- run lock ----------------------------------------------------------------------

    def acquire_lock(self, run_id: str, execution_arn: str, lease_s: float) -> dict:
        """Take the reconcile lock for ``lease_s`` seconds. Free, expired or already ours:
        taken (re-entrant for the same run). Held by another run: ``RunLocked(holder=arn)``."""
        if lease_s <= 0:
            raise InvalidInput(f"lock lease {lease_s!r}: a positive number of seconds is accepted")
        now = self.clock()
        item = {"pk": "lock", "sk": "run", "run_id": run_id, "execution_arn": execution_arn,
                "acquired_at": _iso(now), "expires_at": int(math.ceil(now + lease_s))}
        try:
            self._call("put_item", TableName=self.state_table, Item=_to_dynamo(item)["M"],
                       ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now OR run_id = :rid",
                       ExpressionAttributeValues={":now": {"N": str(int(now))}, ":rid": {"S": run_id}},
                       ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            old = item_to_dict(exc.response.get("Item")) or self._get(self.state_table, "lock", "run") or {}
            holder = old.get("execution_arn", "")
            until = _iso(float(old["expires_at"])) if old.get("expires_at") else "?"
            raise RunLocked(f"reconcile lock held by run {old.get('run_id', '?')} ({holder}) until {until}",
                            holder=holder) from None
        return {k: v for k, v in item.items() if k not in ("pk", "sk")}

    def renew_lock(self, run_id: str, lease_s: float) -> None:
        """Extend our lease (long runs); ``RunLocked`` if the lock is no longer ours."""
        try:
            self._call("update_item", TableName=self.state_table, Key=_key("lock", "run"),
                       UpdateExpression="SET expires_at = :exp", ConditionExpression="run_id = :rid",
                       ExpressionAttributeValues={":exp": {"N": str(int(math.ceil(self.clock() + lease_s)))},
                                                  ":rid": {"S": run_id}})
        except ClientError:
            current = self.current_lock() or {}
            raise RunLocked(f"run {run_id} lost the reconcile lock", holder=current.get("execution_arn", "")) \
                from None

    def release_lock(self, run_id: str) -> bool:
        """Release the lock if ``run_id`` holds it; ``False`` when it did not (nothing changed)."""
        try:
            self._call("delete_item", TableName=self.state_table, Key=_key("lock", "run"),
                       ConditionExpression="run_id = :rid", ExpressionAttributeValues={":rid": {"S": run_id}})
        except ClientError:
            log.warning("release_lock: run %s does not hold the lock", run_id)
            return False
        return True

    def current_lock(self) -> dict | None:
        item = self._get(self.state_table, "lock", "run")
        return None if item is None else {k: v for k, v in item.items() if k not in ("pk", "sk")}

    # --- orphans -----------------------------------------------------------------------

    def put_orphans(self, state: dict) -> None:
        self._put_blob(self.state_table, "orphans", "state", state, None, {"updated_at": _iso(self.clock())})

    def get_orphans(self) -> dict:
        head = self._get(self.state_table, "orphans", "state")
        state = {} if head is None else self._read_blob(self.state_table, head)
        for kind in FindingKind:
            state.setdefault(kind.value, {})
        return state

    # --- instance history (auto-remediation) -------------------------------------------

    def record_instance_event(self, instance_id: str, event: Mapping[str, Any]) -> None:
        """One event of an instance's remediation history (``archived``, ...), kept without
        expiry: the instance's own Vault history went into its archive."""
        at = _iso(self.clock())
        item = {**dict(event), "pk": f"history#{instance_id}", "sk": f"{at}#{event.get('run_id', '')}",
                "instance_id": instance_id, "at": at}
        self._call("put_item", TableName=self.state_table, Item=_to_dynamo(item, "instance event")["M"])

    def instance_history(self, instance_id: str, limit: int = 50) -> list[dict]:
        """The instance's remediation events, oldest first."""
        items = self._query(self.state_table, f"history#{instance_id}", limit=max(1, limit))
        return [{k: v for k, v in i.items() if k not in ("pk", "sk")} for i in items[:limit]]

    # --- per-run scratch ---------------------------------------------------------------

    def put_scratch(self, run_id: str, key: str, value: Any, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise InvalidInput(f"scratch ttl {ttl_s!r}: a positive number of seconds is accepted")
        self._put_blob(self.state_table, f"scratch#{run_id}", key, value, self.clock() + ttl_s)

    def get_scratch(self, run_id: str, key: str, default: Any = None) -> Any:
        head = self._get(self.state_table, f"scratch#{run_id}", key)
        return default if head is None else self._read_blob(self.state_table, head)

    # --- resilience guard state (resilience/state.py drives these items) ---------------

    def guard_update(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """``update_item`` on the guard item of ``name`` (``api:endpoint``). Returns the new item
        (``ReturnValues=ALL_NEW``); raises ``ClientError`` (ConditionalCheckFailed, with the old
        item in ``response["Item"]``) when the condition does not hold."""
        out = self._call("update_item", TableName=self.state_table, Key=_key("guard", name),
                         ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD", **kwargs)
        return item_to_dict(out.get("Attributes")) or {}

    def get_breaker_states(self) -> dict[str, dict[str, Any]]:
        """``{"cf:prod": {"state": "closed"|"open"|"half_open", "failures", "opened_at", ...}}``
        for every guard that has state (status page)."""
        out: dict[str, dict[str, Any]] = {}
        for item in self._query(self.state_table, "guard", consistent=False):
            out[item["sk"]] = {"state": item.get("cb") or "closed", "failures": int(item.get("failures") or 0),
                               "successes": int(item.get("successes") or 0),
                               **({"opened_at": _iso(float(item["opened_at"]))} if item.get("opened_at") else {})}
        return out

    def guard_state(self, name: str) -> dict[str, Any]:
        out = self._call("get_item", TableName=self.state_table, Key=_key("guard", name), ConsistentRead=True)
        return item_to_dict(out.get("Item")) or {}
