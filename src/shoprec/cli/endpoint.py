"""``shoprec endpoint serve``: the ranking endpoint, run as the SageMaker inference container runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoprec.cli.common import cli_errors

app = typer.Typer(no_args_is_help=True, help="The ranking endpoint (the SageMaker inference container).")


@app.command("serve")
def endpoint_serve(
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Bundle folder (default: $SHOPREC_ENDPOINT_MODEL_DIR or /opt/ml/model)."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080, SageMaker's).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default 0.0.0.0).")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (default auto).")] = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads (0: one per core).")] = None,
    batch_max_instances: Annotated[int | None, typer.Option(help="Most instances per model call.")] = None,
    batch_max_wait_ms: Annotated[
        float | None, typer.Option(help="How long a request waits for others to batch with.")
    ] = None,
    batch_queue_size: Annotated[int | None, typer.Option(help="Waiting requests before 503.")] = None,
    ranker_variant: Annotated[
        str | None,
        typer.Option(
            help="The bundle's ranker variant to serve (default: $SHOPREC_RANKER_VARIANT or the "
            "bundle's default_variant)."
        ),
    ] = None,
) -> None:
    """Serve a bundle exactly as the SageMaker container does (same app, same settings)."""
    from shoprec.endpoint.server import run_endpoint
    from shoprec.endpoint.settings import EndpointSettings

    with cli_errors():
        settings = EndpointSettings().overridden(
            model_dir=model_dir,
            port=port,
            host=host,
            device=device,
            threads=threads,
            batch_max_instances=batch_max_instances,
            batch_max_wait_ms=batch_max_wait_ms,
            batch_queue_size=batch_queue_size,
            ranker_variant=ranker_variant,
        )
        run_endpoint(settings)
