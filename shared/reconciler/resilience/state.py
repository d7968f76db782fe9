"""Where a guard keeps its state: the DynamoDB state table (shared) or process memory, with the same
conditional transitions (:class:`Transition`) on both."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from reconciler.store.table import item_to_dict


class ConditionFailed(Exception):
    def __init__(self, old: dict[str, Any]):
        super().__init__("condition failed")
        self.old = old


@dataclass(frozen=True)
class Transition:
    """One conditional state change, written twice: as a DynamoDB update expression (shared
    state) and as Python (in-process fallback), so both backends run the same algorithm."""

    name: str
    update: str
    condition: str
    values: tuple[str, ...]  # placeholders used by update + condition
    check: Callable[[dict[str, Any], dict[str, Any]], bool]
    apply: Callable[[dict[str, Any], dict[str, Any]], None]


def closed(s: dict[str, Any]) -> bool:
    return s.get("cb", "closed") == "closed"


CLOSED_CONDITION = "(attribute_not_exists(cb) OR cb = :closed)"


CONSTANTS = {"closed": "closed", "open": "open", "half": "half_open", "zero": 0, "one": 1, "minus": -1}


def _num(x: float) -> str:
    return repr(round(float(x), 6)) if isinstance(x, float) else str(x)


class DynamoGuardState:
    """Guard state in the DynamoDB state table (shared by every Lambda invocation)."""

    def __init__(self, store: Any, name: str):
        self.store, self.name = store, name
        self.writes = 0  # DynamoDB write requests made (cost figure)
        self.reads = 0

    def update(self, t: Transition, params: dict[str, Any]) -> dict[str, Any]:
        p = {**CONSTANTS, **params}
        values = {}
        for key in t.values:
            v = p[key]
            values[f":{key}"] = {"S": v} if isinstance(v, str) else {"N": _num(v)}
        self.writes += 1
        try:
            return self.store.guard_update(self.name, UpdateExpression=t.update, ConditionExpression=t.condition,
                                           ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

            raise ConditionFailed(item_to_dict(exc.response.get("Item")) or {}) from None

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return self.store.guard_state(self.name)


class LocalGuardState:
    """The same state in process memory (no store configured, or unit tests)."""

    _shared: dict[str, dict[str, Any]] = {}
    _lock = threading.Lock()

    def __init__(self, name: str, shared: dict[str, dict[str, Any]] | None = None):
        self.name = name
        self._items = self._shared if shared is None else shared
        self.writes = self.reads = 0

    def update(self, t: Transition, params: dict[str, Any]) -> dict[str, Any]:
        p = {**CONSTANTS, **params}
        with self._lock:
            state = self._items.setdefault(self.name, {})
            if not t.check(state, p):
                raise ConditionFailed(dict(state))
            t.apply(state, p)
            return dict(state)

    def read(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._items.get(self.name, {}))


def reset_local_state() -> None:
    """Forget the in-process guard state (tests; a new "process")."""
    with LocalGuardState._lock:
        LocalGuardState._shared.clear()
