"""``shoprec serve`` (the REST API under uvicorn) and ``shoprec state import`` (the user-state store)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from shoprec.cli.common import DataRootOpt, DatasetOpt, FormatOpt, cli_errors, console, progress_bars

if TYPE_CHECKING:
    from shoprec.container import Container
    from shoprec.settings import Settings

ArtifactsOpt = Annotated[
    str | None, typer.Option(help="Bundle folder or s3://bucket/prefix (default: $SHOPREC_ARTIFACTS).")
]
StateOpt = Annotated[str | None, typer.Option(help="sqlite:///path or dynamodb://table.")]


def serve(
    artifacts: ArtifactsOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 exposes the API).")] = "127.0.0.1",
    state: StateOpt = None,
    cache: Annotated[str | None, typer.Option(help="memory://, redis://host:port/db or rediss://...")] = None,
    ranker: Annotated[
        str | None, typer.Option(help="onnx, sagemaker://endpoint or http://host:port.")
    ] = None,
    request_timeout: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds a client has to send a whole request; slower connections are closed."
        ),
    ] = 10.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port, each with its own copy of the bundle in memory. With a "
            "memory:// cache each worker caches alone, and a list one worker cached can be served for up to "
            "cache_ttl_s after an event sent to another: use redis:// for fresh lists.",
        ),
    ] = 1,
) -> None:
    """Serve the REST API with uvicorn; prints ready-to-paste curl commands first."""
    # Before numpy is first imported (here and in spawned workers): OpenBLAS's pool spins after every
    # product, and a request's small products gain nothing from it (the stack sets the same on Lambda).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import uvicorn

    from shoprec.api.app import create_app
    from shoprec.api.server import server_config
    from shoprec.container import build_container
    from shoprec.settings import get_settings

    with cli_errors():
        settings = get_settings().overridden(artifacts=artifacts, state=state, cache=cache, ranker=ranker)
        with console.status("loading the bundle and building the search index"):
            container = build_container(settings)
            container.recommendations.warm_up()
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(
        f"[bold]shoprec[/] model {container.bundle.manifest.short_version} · {container.bundle.n_items} items"
    )
    for name, backend in container.backends().items():
        console.print(f"  {name:<10} {backend}", markup=False, highlight=False, soft_wrap=True)
    console.print("[bold]try:[/]")
    for line in _curl_examples(container, base):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if workers > 1:
        _serve_workers(settings, host=host, port=port, request_timeout=request_timeout, workers=workers)
        return
    config = server_config(create_app(container), host=host, port=port, request_timeout_s=request_timeout)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        raise typer.Exit(3)


def _serve_workers(settings: Settings, *, host: str, port: int, request_timeout: float, workers: int) -> None:
    """uvicorn's process supervisor over ``workers`` spawned processes sharing one socket; each builds its
    container from the ``SHOPREC_*`` environment, so the command line's backends are passed on there."""
    import os

    from uvicorn.supervisors import Multiprocess

    from shoprec.api.server import server_config

    for name in ("artifacts", "state", "cache", "ranker"):
        os.environ[f"SHOPREC_{name.upper()}"] = str(getattr(settings, name))
    config = server_config(
        "shoprec.api.server:worker_app",
        host=host,
        port=port,
        request_timeout_s=request_timeout,
        workers=workers,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()


state_app = typer.Typer(no_args_is_help=True, help="The user-state store.")


@state_app.command("import")
def state_import(
    dataset: DatasetOpt,
    artifacts: ArtifactsOpt = None,
    state: StateOpt = None,
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
) -> None:
    """Load the dataset's user histories into the state store (idempotent), so its user ids are known."""
    from shoprec.container import build_container
    from shoprec.data import load_dataset
    from shoprec.services.importer import import_histories
    from shoprec.settings import get_settings

    with cli_errors():
        settings = get_settings().overridden(artifacts=artifacts, state=state)
        container = build_container(settings)
        ds = load_dataset(dataset, fmt, data_root=data_root)
        with progress_bars() as progress:
            task = progress.add_task("importing histories", total=ds.n_users)
            result = import_histories(
                container.events, ds, progress=lambda d, t: progress.update(task, completed=d, total=t)
            )
    console.print(
        f"{len(result.users)} users · {result.applied} events applied · {result.duplicates} already there"
        f" · {container.state.describe()}"
    )


def _curl_examples(container: Container, base: str) -> list[str]:
    """curl commands using the bundle's most popular items, so each one returns something real."""
    import numpy as np

    catalog = container.catalog
    top = [int(i) for i in np.argsort(-container.bundle.popularity, kind="stable")[:3]]
    item = catalog.item_ids[top[0]]
    words = [w for w in catalog.titles[top[0]].split() if w.isalpha() and len(w) > 3]
    query = (words[0] if words else "glass").lower()
    events = {
        "events": [
            {"event_id": f"demo-{n}", "user_id": "demo-user", "item_id": catalog.item_ids[i], "type": "view"}
            for n, i in enumerate(top[:2])
        ]
    }
    rank = {"user_id": "demo-user", "item_ids": [catalog.item_ids[i] for i in top]}
    json_h = "-H 'content-type: application/json'"
    return [
        f"curl -s {base}/v1/health",
        f"curl -s '{base}/v1/recommendations/demo-user?k=5'",
        f"curl -s {base}/v1/events {json_h} -d '{json.dumps(events)}'",
        f"curl -s '{base}/v1/recommendations/demo-user?k=5'   # now personalised",
        f"curl -s '{base}/v1/items/{item}/similar?k=5'",
        f"curl -s '{base}/v1/search?q={query}&k=5'",
        f"curl -s {base}/v1/rank {json_h} -d '{json.dumps(rank)}'",
        f"curl -s -X DELETE {base}/v1/users/demo-user -o /dev/null -w '%{{http_code}}\\n'",
        f"# OpenAPI UI: {base}/docs",
    ]
