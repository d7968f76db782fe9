"""ApplyBatch state: phase 4, back up then update Vault for one batch (stops early when time runs short).

Thin handler: the logic is reconciler.phases.apply_batch (the layer package).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.phases import apply_batch

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="run.run_id || run_id || state.run.run_id || execution_arn")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return apply_batch.run(event, context)
