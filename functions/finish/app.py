"""Finish state: figures, metrics, run record, release the lock.

Thin handler: the logic is reconciler.phases.finish (the layer package).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.phases import finish

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="run.run_id || run_id || state.run.run_id || execution_arn")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return finish.run(event, context)
