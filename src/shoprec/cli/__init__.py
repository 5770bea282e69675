"""The ``shoprec`` command line: thin commands that parse, call one function, and render.

One module per command group; the whole command tree is assembled here. Each command imports what it
needs (torch, uvicorn, boto3, the SageMaker SDK) when it runs, so ``shoprec --help`` starts fast.
"""

from __future__ import annotations

from typing import Any

import typer

from shoprec.cli import ab, batch, cost, endpoint, models, retrain, sagemaker, search_eval, serving

app = typer.Typer(no_args_is_help=True, add_completion=False, help="shoprec: search and recommendation.")
app.command()(models.train)
app.command()(models.evaluate)
app.command()(models.report)
app.command()(retrain.retrain)
app.command()(search_eval.search_eval)
app.command()(batch.batch)
app.command()(serving.serve)
app.command()(cost.cost)
app.add_typer(serving.state_app, name="state")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(sagemaker.app, name="sagemaker")
app.add_typer(ab.app, name="ab")

__all__ = ["app", "main"]


def main() -> Any:
    """Console-script entry point."""
    return app()
