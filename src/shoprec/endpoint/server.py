"""Run the ranking endpoint: in the foreground (the container's ``serve``, ``shoprec endpoint serve``) or
with uvicorn in a background thread (tests and local stacks)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from shoprec.endpoint.app import create_endpoint_app
from shoprec.endpoint.batcher import BatchingConfig
from shoprec.endpoint.settings import EndpointSettings, execution_providers

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 75
"""SageMaker's front end reuses connections to the container; uvicorn's 5 s default would close them often."""


def run_endpoint(settings: EndpointSettings) -> None:
    """Load the bundle in ``settings.model_dir`` and serve it until the process is stopped.

    The SageMaker image (``serve``, i.e. ``python -m shoprec.endpoint``) and ``shoprec endpoint serve``
    both come here, so a local run is the container's app, knobs and all.
    """
    providers = execution_providers(settings.device)
    app = create_endpoint_app(
        settings.model_dir,
        threads=settings.threads,
        providers=providers,
        ranker_variant=settings.ranker_variant,
        batching=settings.batching(),
        expected_version=settings.model_version,
    )
    log.info(
        "serving %s on %s:%d with %s", settings.model_dir, settings.host, settings.port, ", ".join(providers)
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def serve_in_thread(
    model_dir: Path, port: int = 0, *, host: str = "127.0.0.1", batching: BatchingConfig | None = None
) -> tuple[str, Callable[[], None]]:
    """Start the endpoint for ``model_dir``; returns its base URL and a function that stops it.

    ``port=0`` picks a free port: the socket is bound here, before uvicorn starts, so the URL is known and
    no other process can take the port in between.
    """
    app = create_endpoint_app(model_dir, batching=batching)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="ranking-endpoint", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"ranking endpoint did not start on {host}:{bound_port}")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.batcher.close()

    return f"http://{host}:{bound_port}", stop
