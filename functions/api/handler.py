"""Lambda entry point of the REST API: API Gateway REST (v1) and HTTP API (v2) events through Mangum.

The container (bundle, backends, services) is built on the first event of an execution environment and
reused while it stays warm; importing this module reads no settings and loads no model.
"""

from __future__ import annotations

from typing import Any

from shoprec.lambda_init import init_phase

# What the import builds lives as long as the execution environment: the garbage collector need not
# scan it, neither now nor later (see shoprec.lambda_init).
with init_phase():
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mangum import Mangum
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

    from shoprec.api.app import create_app
    from shoprec.observability import logger, metrics, route_package_logs, tracer

    route_package_logs()

    app = create_app()
    # problem+json is text: without it Mangum base64-encodes error bodies, which a REST API without
    # binary media types would pass to clients still encoded.
    asgi = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"])


# REST and HTTP APIs keep the request id at the same path (correlation_paths.API_GATEWAY_HTTP is an alias).
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # lists can exceed X-Ray's metadata limit
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Mangum types the context as its own protocol with settable attributes; the runtime object fits it.
    response: dict[str, Any] = asgi(event, context)  # type: ignore[arg-type]
    return response
