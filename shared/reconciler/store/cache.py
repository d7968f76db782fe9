"""The deployment-detail cache (cache table, ``deployment#<director>`` / name)."""

from __future__ import annotations

from typing import Any

from .table import Tables, fits_key, iso_time, item_to_dict


class DeploymentCache(Tables):
    """BOSH deployment details by director and name: fresh for ``cache_ttl``, kept longer for
    revalidation by the events feed."""

    def get_cached_deployment(self, director: str, name: str, max_age: float | None = None) -> dict | None:
        """The cached detail, or None; with ``max_age``, None for a detail cached longer ago."""
        got = self.get_cached_entry(director, name)
        if got is None or (max_age is not None and self.clock() - got[1] > max_age):
            return None
        return got[0]

    def get_cached_entry(self, director: str, name: str) -> tuple[dict, float] | None:
        """``(detail, cached_ts)`` of a kept detail, whatever its age (revalidation decides)."""
        if not fits_key(name):
            return None  # a name DynamoDB cannot key on is simply never cached
        head = self._get(self.cache_table, f"deployment#{director}", name, consistent=False)
        if head is None:
            return None
        return self._read_blob(self.cache_table, head), float(head.get("cached_ts") or 0)

    def cached_deployments(self, director: str) -> dict[str, float]:
        """``{deployment name: cached_ts}`` of one director's kept details (keys only: one Query
        page per ~1 MB of items, no detail decoded)."""
        kwargs: dict[str, Any] = {"TableName": self.cache_table, "KeyConditionExpression": "pk = :pk",
                                  "ExpressionAttributeValues": {":pk": {"S": f"deployment#{director}"}},
                                  "ProjectionExpression": "sk, cached_ts, expires_at"}
        out: dict[str, float] = {}
        while True:
            page = self._call("query", **kwargs)
            for raw in page.get("Items", []):
                item = self._live(item_to_dict(raw))
                if item is not None:
                    out[str(item["sk"])] = float(item.get("cached_ts") or 0)
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_cached_deployment(self, director: str, name: str, detail: dict, ttl_s: float,
                              keep_s: float | None = None) -> None:
        """Cache a detail: fresh for ``ttl_s``, then kept until ``keep_s`` for revalidation
        (BOSH's events feed says whether it is still true)."""
        if ttl_s <= 0 or not fits_key(name):
            return  # cache_ttl 0 disables the cache; a hostile 2 KB name must not fail the scan batch
        now = self.clock()
        self._put_blob(self.cache_table, f"deployment#{director}", name, detail, now + max(ttl_s, keep_s or 0),
                       {"kind": "deployment", "cached_at": iso_time(now), "cached_ts": round(now, 3)})

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
