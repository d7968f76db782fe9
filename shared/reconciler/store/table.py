"""The one table helper every repository of the store builds on: value conversion, paged
queries, batch writes and large values (compressed, chunked)."""

from __future__ import annotations

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
from typing import Any, Self

import zstandard
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.errors import ConfigError, InvalidInput, Unavailable

log = logging.getLogger("reconciler.store")

INLINE_MAX = 350_000  # compressed bytes kept in the head item (DynamoDB item limit: 400 KB)
CHUNK_SIZE = 350_000
DEFAULT_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600)  # run duration, seconds (= api.metrics_text)
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*\Z")
MAX_SORT_KEY_BYTES = 1024  # DynamoDB's limit for a sort key value


def fits_key(value: str) -> bool:
    return isinstance(value, str) and 0 < len(value.encode("utf-8", "surrogatepass")) <= MAX_SORT_KEY_BYTES


_ZSTD_LEVEL = 3


# --- value conversion -----------------------------------------------------------------


def to_dynamo(value: Any, where: str = "value") -> Any:
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
        return {"M": {str(k): to_dynamo(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_dynamo(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise InvalidInput(f"{where}: {type(value).__name__} cannot be stored (JSON types only)")


def from_dynamo(attr: Mapping[str, Any]) -> Any:
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
        return {k: from_dynamo(v) for k, v in value.items()}
    if kind == "L":
        return [from_dynamo(v) for v in value]
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {float(v) for v in value}
    raise InvalidInput(f"unsupported DynamoDB attribute type {kind}")


def item_to_dict(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if item is None else {k: from_dynamo(v) for k, v in item.items()}


def item_key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_value(value: Any, what: str) -> bytes:
    try:
        raw = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what}: value is not JSON-serialisable ({exc})") from None
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(raw)


def decode_value(blob: bytes) -> Any:
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


class Tables:
    """The two tables (cache, state) and the DynamoDB client; what every repository shares."""

    def __init__(self, cache_table: str, state_table: str, client: Any = None, *, clock=time.time,
                 max_errors: int = 100, run_ttl_s: float = 90 * 86400, error_ttl_s: float | None = None,
                 duration_buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        if not cache_table or not state_table:
            raise ConfigError("Store needs both table names (CACHE_TABLE and STATE_TABLE)")
        if client is None:
            import boto3  # cold start: only when no client is given
            from botocore.config import Config  # (same)

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
    def from_env(cls, env: Mapping[str, str] | None = None, client: Any = None, **kwargs: Any) -> Self:
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
        out = self._call("get_item", TableName=table, Key=item_key(pk, sk), ConsistentRead=consistent)
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
        blob = encode_value(value, f"{pk}/{sk}")
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
                writes.append({"PutRequest": {"Item": to_dynamo(chunk)["M"]}})
            self._batch_write(table, writes)  # chunks first: a visible head always has its chunks
            head.update(n=len(parts), gen=gen, sha256=hashlib.sha256(blob).hexdigest())
        out = self._call("put_item", TableName=table, Item=to_dynamo(head)["M"], ReturnValues="ALL_OLD")
        self._drop_chunks(table, item_to_dict(out.get("Attributes")))

    def _drop_chunks(self, table: str, old_head: dict[str, Any] | None) -> None:
        """Delete the chunks of a replaced or deleted head (best effort: TTL or the next clear
        removes leftovers; readers never follow an old generation)."""
        if not old_head or not old_head.get("n"):
            return
        chunk_pk = f"chunk#{old_head['pk']}#{old_head['sk']}#{old_head.get('gen', '')}"
        try:
            self._batch_write(table, [{"DeleteRequest": {"Key": item_key(chunk_pk, f"{i:05d}")}}
                                      for i in range(int(old_head["n"]))])
        except Unavailable as exc:
            log.warning("could not delete old chunks of %s/%s: %s", old_head["pk"], old_head["sk"], exc)

    def _read_blob(self, table: str, head: dict[str, Any]) -> Any:
        if not head.get("n"):
            return decode_value(head["z"])
        chunk_pk = f"chunk#{head['pk']}#{head['sk']}#{head.get('gen', '')}"
        chunks = self._query(table, chunk_pk)
        blob = b"".join(c["z"] for c in sorted(chunks, key=lambda c: c["sk"]))
        if len(chunks) != int(head["n"]) or hashlib.sha256(blob).hexdigest() != head.get("sha256"):
            raise Unavailable(f"stored value {head['pk']}/{head['sk']} is incomplete "
                              f"({len(chunks)} of {head['n']} chunks)", api="dynamodb")
        return decode_value(blob)
