"""The deployment-detail cache (cache table, ``deployment#<director>`` / name)."""

from __future__ import annotations

from typing import Any

from .table import Tables, fits_key, iso_time


class DeploymentCache(Tables):
    """BOSH deployment details by director and name, with a TTL."""

    def get_cached_deployment(self, director: str, name: str) -> dict | None:
        if not fits_key(name):
            return None  # a name DynamoDB cannot key on is simply never cached
        head = self._get(self.cache_table, f"deployment#{director}", name, consistent=False)
        return None if head is None else self._read_blob(self.cache_table, head)

    def put_cached_deployment(self, director: str, name: str, detail: dict, ttl_s: float) -> None:
        if ttl_s <= 0 or not fits_key(name):
            return  # cache_ttl 0 disables the cache; a hostile 2 KB name must not fail the scan batch
        self._put_blob(self.cache_table, f"deployment#{director}", name, detail, self.clock() + ttl_s,
                       {"kind": "deployment", "cached_at": iso_time(self.clock())})

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
