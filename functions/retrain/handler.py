"""Lambda entry point of the scheduled retraining's steps: the state machine passes ``{"step", "state"}``
and takes the returned state (``shoprec.deploy.retrain_steps``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shoprec.deploy.retrain_steps import run_step
from shoprec.observability import logger, metrics, route_package_logs

route_package_logs()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_step(event)
