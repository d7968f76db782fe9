"""Function URL handler: status, Prometheus metrics, forced runs, runs, orphans, dashboard."""

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.api.routes import ContainerServices, app, serving
from reconciler.observability import SERVICE, inject_run_context

services = ContainerServices()  # built on the first request, kept for the container's life
tracer = Tracer(service=SERVICE)


@inject_run_context(use_settings=False)  # correlation id: the Function URL request id
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    with serving(services):
        return app.resolve(event, context)
