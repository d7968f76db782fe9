"""Make moto behave as the real services where the emulated stack relies on it.


DynamoDB atomicity:
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


def sfn_task_parameters_like_aws() -> None:
    """``arn:aws:states:::states:startExecution`` (and the other Step Functions integrations)
    called with AWS's names, as the service does (idempotent).

    The ASL names the API's fields in PascalCase (``StateMachineArn``, ``Name``, ``Input``) and
    reads its result the same way (``ExecutionArn``, ``StartDate``). moto's port of the
    interpreter passes the state's parameters to boto3 unchanged (botocore's kwargs are the
    service's own ``stateMachineArn``, ``name``, ``input``: a KeyError, States.Runtime) and
    returns the boto3 response as it comes (``executionArn``). On AWS both are mapped through
    the service model; here too, with the interpreter's own helpers and botocore's model.
    """
    import botocore.session
    from botocore import xform_name
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    if getattr(StateTaskServiceSfn._normalise_parameters, "_mockstack_cased", False):
        return
    model = botocore.session.get_session().get_service_model("stepfunctions")
    operations = {xform_name(name): model.operation_model(name) for name in model.operation_names}
    original_parameters = StateTaskServiceSfn._normalise_parameters
    original_response = StateTaskServiceSfn._normalise_response

    def _normalise_parameters(self: Any, parameters: dict, boto_service_name: str | None = None,
                              service_action_name: str | None = None) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        operation = operations.get(self._get_boto_service_action(service_action_name))
        if operation is not None and isinstance(parameters, dict):
            self._to_boto_request(parameters, operation.input_shape)

    def _normalise_response(self: Any, response: Any, boto_service_name: str | None = None,
                            service_action_name: str | None = None) -> None:
        original_response(self, response, boto_service_name, service_action_name)
        operation = operations.get(self._get_boto_service_action(service_action_name))
        if operation is not None and operation.output_shape is not None and isinstance(response, dict):
            self._from_boto_response(response, operation.output_shape)
            for key, value in list(response.items()):  # timestamps: JSON as AWS writes them (epoch ms)
                if hasattr(value, "timestamp"):
                    response[key] = int(value.timestamp() * 1000)

    _normalise_parameters._mockstack_cased = True  # type: ignore[attr-defined]
    StateTaskServiceSfn._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = _normalise_response  # type: ignore[method-assign]
