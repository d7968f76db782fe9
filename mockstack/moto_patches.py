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


def name_executions_like_aws() -> None:
    """StartExecution without a name gets a UUID, as on AWS (idempotent).

    moto's executing Step Functions backend formats the ARN with ``name=None``: every unnamed
    execution is ``...:execution:<machine>:None``, and a second unnamed start with the same input
    is taken as an idempotent retry and returns the first execution instead of running again.
    The run id (the execution name) is the reconciler's correlation id and run-record key.
    """
    import uuid

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    if getattr(original, "_mockstack_named", False):
        return

    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    start_execution._mockstack_named = True  # type: ignore[attr-defined]
    StepFunctionsParserBackend.start_execution = start_execution
