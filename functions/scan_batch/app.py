"""ScanBatch state: phase 2b, scan one batch of deployments (stops early when time runs short).

Thin handler: the logic is reconciler.phases.scan_batch (the layer package).
"""

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.observability import inject_run_context
from reconciler.phases import runtime, scan_batch

tracer = Tracer()
metrics = Metrics()


@inject_run_context(settings=runtime.settings)  # correlation id: the run id, whatever the event shape
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return scan_batch.run(event, context)
