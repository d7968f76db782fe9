"""Make moto's DynamoDB as atomic as the real service.

Real DynamoDB applies each item operation (``UpdateItem ADD``, a conditional ``PutItem``,
a transaction) atomically. moto's in-memory backend does not lock: two threads doing
``ADD n :1`` on one item can both read the old value and one increment is lost. The
embedded engine runs Map iterations in threads, so without this the emulated AWS would
lose counts that AWS never loses. One process-wide lock around each backend operation
restores the service's semantics (the engine's request volume makes contention moot).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_OPERATIONS = (
    "put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items",
    "transact_get_items", "batch_get_item", "batch_write_item", "execute_statement", "execute_transaction",
    "batch_execute_statement",
)


def make_dynamodb_atomic() -> None:
    """Serialise moto's DynamoDB item operations (idempotent; in-process and server mode)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _OPERATIONS:
        original = getattr(DynamoDBBackend, name, None)
        if original is None or getattr(original, "_mockstack_atomic", False):
            continue

        @functools.wraps(original)
        def atomic(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(self, *args, **kwargs)

        atomic._mockstack_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, atomic)
