"""DiscoverCF state: phase 1, CF service discovery of our broker's instances.

Thin handler: the logic is reconciler.phases.discover_cf (the layer package).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.phases import discover_cf

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="run.run_id || run_id || state.run.run_id || execution_arn")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return discover_cf.run(event, context)
