"""Run the ranking endpoint with uvicorn in a background thread (tests and local stacks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from shoprec.endpoint.app import create_endpoint_app

STARTUP_TIMEOUT_S = 30.0


def serve_in_thread(
    model_dir: Path, port: int = 0, *, host: str = "127.0.0.1"
) -> tuple[str, Callable[[], None]]:
    """Start the endpoint for ``model_dir``; returns its base URL and a function that stops it.

    ``port=0`` picks a free port: the socket is bound here, before uvicorn starts, so the URL is known and
    no other process can take the port in between.
    """
    app = create_endpoint_app(model_dir)
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

    return f"http://{host}:{bound_port}", stop
