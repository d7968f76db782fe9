"""SyncIndex state: phase 5, merge and write secret/db once.

Thin handler: the logic is reconciler.phases.sync_index (the layer package).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.phases import sync_index

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="run.run_id || run_id || state.run.run_id || execution_arn")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return sync_index.run(event, context)
