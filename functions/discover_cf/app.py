"""DiscoverCF state: phase 1, CF service discovery of our broker's instances.

Thin handler: the logic is reconciler.phases.discover_cf (the layer package).
"""

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.observability import inject_run_context
from reconciler.phases import discover_cf
from reconciler.phases.deps import ContainerDeps

deps = ContainerDeps()  # built on the first call, kept for the container's life
tracer = Tracer()
metrics = Metrics()


@inject_run_context(settings=deps.settings)  # correlation id: the run id, whatever the event shape
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return deps.run(discover_cf.run, event, context)
