"""The resilience guards' shared state (``guard`` / ``<api>:<endpoint>``, driven by resilience/state.py)."""

from __future__ import annotations

from typing import Any

from .table import Tables, iso_time, item_key, item_to_dict


class GuardStates(Tables):
    """Conditional updates of a guard item, its reads, and every breaker's state for the status page."""

    def guard_update(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """``update_item`` on the guard item of ``name`` (``api:endpoint``). Returns the new item
        (``ReturnValues=ALL_NEW``); raises ``ClientError`` (ConditionalCheckFailed, with the old
        item in ``response["Item"]``) when the condition does not hold."""
        out = self._call("update_item", TableName=self.state_table, Key=item_key("guard", name),
                         ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD", **kwargs)
        return item_to_dict(out.get("Attributes")) or {}

    def get_breaker_states(self) -> dict[str, dict[str, Any]]:
        """``{"cf:prod": {"state": "closed"|"open"|"half_open", "failures", "opened_at", ...}}``
        for every guard that has state (status page)."""
        out: dict[str, dict[str, Any]] = {}
        for item in self._query(self.state_table, "guard", consistent=False):
            out[item["sk"]] = {"state": item.get("cb") or "closed", "failures": int(item.get("failures") or 0),
                               "successes": int(item.get("successes") or 0),
                               **({"opened_at": iso_time(float(item["opened_at"]))} if item.get("opened_at") else {})}
        return out

    def guard_state(self, name: str) -> dict[str, Any]:
        out = self._call("get_item", TableName=self.state_table, Key=item_key("guard", name), ConsistentRead=True)
        return item_to_dict(out.get("Item")) or {}
