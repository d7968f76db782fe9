"""Function URL handler: status, Prometheus metrics, forced runs, runs, orphans, dashboard."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.api.routes import app

logger = Logger(service="blacksmith-reconciler")
tracer = Tracer(service="blacksmith-reconciler")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
