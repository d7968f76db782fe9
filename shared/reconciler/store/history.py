"""Each instance's remediation history (``history#<instance id>`` / ``<time>#<run id>``): what
auto-remediation did to it (``archived``), kept without expiry, since the instance's own Vault
history went into its archive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .table import Tables, iso_time, to_dynamo


class InstanceHistory(Tables):
    def record_instance_event(self, instance_id: str, event: Mapping[str, Any]) -> None:
        at = iso_time(self.clock())
        item = {**dict(event), "pk": f"history#{instance_id}", "sk": f"{at}#{event.get('run_id', '')}",
                "instance_id": instance_id, "at": at}
        self._call("put_item", TableName=self.state_table, Item=to_dynamo(item, "instance event")["M"])

    def instance_history(self, instance_id: str, limit: int = 50) -> list[dict]:
        """The instance's remediation events, oldest first."""
        items = self._query(self.state_table, f"history#{instance_id}", limit=max(1, limit))
        return [{k: v for k, v in i.items() if k not in ("pk", "sk")} for i in items[:limit]]
